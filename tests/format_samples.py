"""One process execution written in every input shape shellsieve reads, as the real producers write it.

`Exec` describes a process start (and optionally the connection it then makes); the writers below turn
it into ECS JSON (Elastic Defend), auditd records (SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE, as
/var/log/audit/audit.log holds them, with `node=`), Sysmon for Windows JSON (Winlogbeat's
winlog.event_data and the evtx_dump Event.System / Event.EventData shape), Sysmon for Linux XML in a
syslog line, Wazuh archives JSON, and a plain command-line log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

_enc = msgspec.json.encode
HOST = "web-01"


@dataclass(frozen=True)
class Exec:
    args: tuple[str, ...]
    exe: str
    pid: int = 4242
    ppid: int = 4000
    uid: int = 0
    user: str = "root"
    cwd: str = "/tmp"
    parent: Exec | None = None
    time: float = 1777800000.100
    serial: int = 1001
    connect: tuple[str, int] | None = None  # a connect() this process makes 0.5 s later
    windows: bool = False
    domain: str = "NT AUTHORITY"

    @property
    def command_line(self) -> str:
        """As the user typed it (what a command log holds and Defend's command_line shows); on Windows
        with the double quotes CommandLineToArgvW reads."""
        if self.windows:
            return " ".join(f'"{a}"' if " " in a else a for a in self.args)
        return " ".join(typed(a) for a in self.args)

    @property
    def argv_line(self) -> str:
        """argv joined by spaces, unquoted: what Sysmon for Linux writes as CommandLine."""
        return " ".join(self.args)

    @property
    def name(self) -> str:
        return self.exe.replace("\\", "/").rsplit("/", 1)[-1]


def typed(arg: str) -> str:
    if arg and all(c.isalnum() or c in "@%+=:,./-_" for c in arg):
        return arg
    if "'" not in arg:
        return f"'{arg}'"
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def chain(e: Exec) -> list[Exec]:
    """The execs of `e`'s ancestors first, then `e` itself."""
    return (chain(e.parent) if e.parent else []) + [e]


# -- ECS (Elastic Defend) ------------------------------------------------------------------------------

def _iso(t: float) -> str:
    from shellsieve.events.ecs import iso_time

    return iso_time(t)


def ecs(e: Exec) -> list[bytes]:
    out = []
    p = e.parent
    proc: dict[str, Any] = {
        "entity_id": f"e{e.pid}", "pid": e.pid, "name": e.name, "executable": e.exe, "args": list(e.args),
        "args_count": len(e.args), "command_line": e.command_line, "working_directory": e.cwd,
    }
    if p is not None:
        proc["parent"] = {"pid": p.pid, "name": p.name, "executable": p.exe, "args": list(p.args),
                          "command_line": p.command_line}
    user = {"name": e.user, "id": str(e.uid)}
    if e.windows:
        user = {"name": e.user, "domain": e.domain}
    out.append(_enc({
        "@timestamp": _iso(e.time), "event": {"category": ["process"], "type": ["start"],
                                              "action": "start" if e.windows else "exec", "kind": "event"},
        "host": {"id": HOST, "name": HOST, "os": {"type": "windows" if e.windows else "linux"}},
        "process": proc, "user": user}))
    if e.connect:
        out.append(_enc({
            "@timestamp": _iso(e.time + 0.5),
            "event": {"category": ["network"], "type": ["start"], "action": "connection_attempted"},
            "host": {"id": HOST, "os": {"type": "linux"}},
            "process": {"entity_id": f"e{e.pid}", "pid": e.pid, "name": e.name},
            "destination": {"ip": e.connect[0], "port": e.connect[1]}}))
    return out


# -- auditd --------------------------------------------------------------------------------------------

def audit_value(value: str) -> str:
    """How the kernel writes an untrusted string: quoted as is, or hex when it holds a space, a quote,
    a control byte or a byte above 0x7e."""
    raw = value.encode("utf-8", "surrogateescape")
    if any(b <= 0x20 or b == 0x22 or b >= 0x7f for b in raw):
        return raw.hex().upper()
    return f'"{value}"'


def _execve_fields(args: tuple[str, ...], split_over: int) -> str:
    parts = [f"argc={len(args)}"]
    for i, a in enumerate(args):
        raw = a.encode("utf-8", "surrogateescape")
        if len(raw) > split_over:
            hexed = raw.hex().upper()
            parts.append(f"a{i}_len={len(hexed)}")
            step = split_over * 2
            parts += [f"a{i}[{k}]={hexed[j:j + step]}" for k, j in enumerate(range(0, len(hexed), step))]
        else:
            parts.append(f"a{i}={audit_value(a)}")
    return " ".join(parts)


def audit_exec(e: Exec, node: bool = True, split_over: int = 7500, eoe: bool = True) -> list[str]:
    """The records of one execve, in the order auditd writes them."""
    hdr = f"msg=audit({e.time:.3f}:{e.serial}):"
    pre = f"node={HOST} " if node else ""
    comm = audit_value(e.name[:15])
    recs = [
        f"{pre}type=SYSCALL {hdr} arch=c000003e syscall=59 success=yes exit=0 a0=55d0c2a0 a1=55d0c2b0 "
        f"a2=55d0c2c0 a3=0 items=2 ppid={e.ppid} pid={e.pid} auid=1000 uid={e.uid} gid={e.uid} euid={e.uid} "
        f"suid={e.uid} fsuid={e.uid} egid={e.uid} sgid={e.uid} fsgid={e.uid} tty=(none) ses=3 comm={comm} "
        f'exe={audit_value(e.exe)} subj=unconfined key="exec"',
        f"{pre}type=EXECVE {hdr} {_execve_fields(e.args, split_over)}",
        f"{pre}type=CWD {hdr} cwd={audit_value(e.cwd)}",
        f"{pre}type=PATH {hdr} item=0 name={audit_value(e.exe)} inode=1311 dev=fd:00 mode=0100755 ouid=0 "
        "ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
        f'{pre}type=PATH {hdr} item=1 name="/lib64/ld-linux-x86-64.so.2" inode=2622 dev=fd:00 mode=0100755 '
        "ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
        f"{pre}type=PROCTITLE {hdr} proctitle="
        + "\x00".join(e.args).encode("utf-8", "surrogateescape")[:128].hex().upper(),
    ]
    if eoe:
        recs.append(f"{pre}type=EOE {hdr}")
    return recs


def audit_connect(e: Exec, node: bool = True) -> list[str]:
    assert e.connect is not None
    ip, port = e.connect
    saddr = "0200" + port.to_bytes(2, "big").hex().upper() + bytes(int(x) for x in ip.split(".")).hex().upper()
    hdr = f"msg=audit({e.time + 0.5:.3f}:{e.serial + 1}):"
    pre = f"node={HOST} " if node else ""
    return [
        f"{pre}type=SYSCALL {hdr} arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd a2=10 a3=0 "
        f"items=0 ppid={e.ppid} pid={e.pid} auid=1000 uid={e.uid} gid={e.uid} euid={e.uid} suid={e.uid} "
        f"fsuid={e.uid} egid={e.uid} sgid={e.uid} fsgid={e.uid} tty=(none) ses=3 comm={audit_value(e.name[:15])} "
        f'exe={audit_value(e.exe)} key="net"',
        f"{pre}type=SOCKADDR {hdr} saddr={saddr}0000000000000000",
        f"{pre}type=PROCTITLE {hdr} proctitle=" + "\x00".join(e.args).encode()[:128].hex().upper(),
        f"{pre}type=EOE {hdr}",
    ]


def auditd(e: Exec) -> list[bytes]:
    recs: list[str] = []
    for x in chain(e):
        recs += audit_exec(x)
    if e.connect:
        recs += audit_connect(e)
    return [r.encode("utf-8", "surrogateescape") for r in recs]


# -- Sysmon ----------------------------------------------------------------------------------------------

def _guid(pid: int) -> str:
    return f"{{4c9b1a2e-0000-0000-{pid & 0xFFFF:04x}-{pid:012x}}}"


def sysmon_data(e: Exec) -> dict[str, str]:
    p = e.parent
    user = f"{e.domain}\\{e.user}" if e.windows else e.user
    return {
        "RuleName": "-", "UtcTime": _iso(e.time).replace("T", " ").rstrip("Z"), "ProcessGuid": _guid(e.pid),
        "ProcessId": str(e.pid), "Image": e.exe, "FileVersion": "-", "Description": "-", "Product": "-",
        "Company": "-", "OriginalFileName": "-", "CommandLine": e.command_line if e.windows else e.argv_line,
        "CurrentDirectory": "C:\\inetpub\\wwwroot\\" if e.windows else e.cwd,
        "User": user, "LogonGuid": "{4c9b1a2e-0000-0000-0000-000000000000}", "LogonId": "0x3e7",
        "TerminalSessionId": "0", "IntegrityLevel": "System" if e.windows else "no level",
        "Hashes": "SHA256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08" if e.windows else "-",
        "ParentProcessGuid": _guid(e.ppid), "ParentProcessId": str(e.ppid),
        "ParentImage": p.exe if p else "-",
        "ParentCommandLine": (p.command_line if e.windows else p.argv_line) if p else "-",
        "ParentUser": (f"{p.domain}\\{p.user}" if e.windows else p.user) if p else "-",
    }


def sysmon_winlogbeat(e: Exec) -> list[bytes]:
    return [_enc({
        "@timestamp": _iso(e.time), "agent": {"type": "winlogbeat", "version": "8.15.0"},
        "event": {"code": "1", "provider": "Microsoft-Windows-Sysmon", "kind": "event", "module": "sysmon"},
        "log": {"level": "information"}, "message": "Process Create:\nRuleName: -",
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "computer_name": HOST, "event_id": "1",
                   "provider_name": "Microsoft-Windows-Sysmon", "record_id": 4711, "api": "wineventlog",
                   "event_data": sysmon_data(e)}})]


def sysmon_evtx(e: Exec) -> list[bytes]:
    return [_enc({"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon",
                                                "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9"}},
                   "EventID": 1, "Version": 5, "Level": 4, "Task": 1, "Opcode": 0,
                   "TimeCreated": {"#attributes": {"SystemTime": _iso(e.time).replace("Z", "000Z")}},
                   "EventRecordID": 4711, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": HOST,
                   "Security": {"#attributes": {"UserID": "S-1-5-18"}}},
        "EventData": sysmon_data(e)}})]


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _sysmon_xml(event_id: int, data: dict[str, str], t: float) -> str:
    body = "".join(f'<Data Name="{k}">{_xml_escape(v)}</Data>' for k, v in data.items())
    return (
        '<Event><System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>'
        f"<EventID>{event_id}</EventID><Version>5</Version><Level>4</Level><Task>{event_id}</Task><Opcode>0</Opcode>"
        f'<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="{_iso(t).replace("Z", "000Z")}"/>'
        "<EventRecordID>4711</EventRecordID><Correlation/><Execution ProcessID=\"811\" ThreadID=\"811\"/>"
        f"<Channel>Linux-Sysmon/Operational</Channel><Computer>{HOST}</Computer><Security UserId=\"0\"/>"
        f"</System><EventData>{body}</EventData></Event>")


def _sysmon_linux_events(e: Exec) -> list[tuple[int, dict[str, str], float]]:
    """(event id, EventData, time) of Sysmon for Linux's events for `e`: its ancestors' and its own process
    creations (1), then its connection (3)."""
    out = [(1, sysmon_data(x), x.time) for x in chain(e)]
    if e.connect:
        ip, port = e.connect
        data = {"RuleName": "-", "UtcTime": _iso(e.time + 0.5).replace("T", " ").rstrip("Z"),
                "ProcessGuid": _guid(e.pid), "ProcessId": str(e.pid), "Image": e.exe, "User": e.user,
                "Protocol": "tcp", "Initiated": "true", "SourceIsIpv6": "false", "SourceIp": "10.0.0.5",
                "SourceHostname": "-", "SourcePort": "51234", "SourcePortName": "-", "DestinationIsIpv6": "false",
                "DestinationIp": ip, "DestinationHostname": "-", "DestinationPort": str(port),
                "DestinationPortName": "-"}
        out.append((3, data, e.time + 0.5))
    return out


def sysmon_syslog(e: Exec) -> list[bytes]:
    return [f"Nov 22 10:00:0{int(eid == 3)} {HOST} sysmon: {_sysmon_xml(eid, data, t)}".encode()
            for eid, data, t in _sysmon_linux_events(e)]


def sysmon_linux_json(e: Exec) -> list[bytes]:
    """Sysmon for Linux's XML event as Vector's `parse_xml` turns it into JSON (attributes as `@Name`,
    element text as `text`, numbers parsed), the shape a pipeline that parses the syslog line ships."""
    return [_enc({"Event": {
        "System": {"Provider": {"@Name": "Linux-Sysmon", "@Guid": "{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"},
                   "EventID": eid, "Version": 5, "Level": 4, "Task": eid, "Opcode": 0,
                   "Keywords": "0x8000000000000000", "TimeCreated": {"@SystemTime": _iso(t).replace("Z", "000Z")},
                   "EventRecordID": 4711, "Channel": "Linux-Sysmon/Operational", "Computer": HOST,
                   "Security": {"@UserId": "0"}},
        "EventData": {"Data": [{"@Name": k, "text": v} for k, v in data.items()]}}})
        for eid, data, t in _sysmon_linux_events(e)]


# -- Wazuh -----------------------------------------------------------------------------------------------

def _wazuh(full_log: str, t: float, data: dict[str, Any] | None, location: str, decoder: str) -> bytes:
    doc: dict[str, Any] = {
        "timestamp": _iso(t).replace("Z", "+0000"), "agent": {"id": "003", "name": HOST, "ip": "10.0.0.5"},
        "manager": {"name": "wazuh-manager"}, "id": f"{t:.3f}", "full_log": full_log,
        "decoder": {"name": decoder}, "location": location}
    if data is not None:
        doc["data"] = data
    return _enc(doc)


def wazuh_audit(e: Exec) -> list[bytes]:
    """Wazuh archives from the `audit` log format: one event's records joined in full_log, plus the
    fields Wazuh's auditd decoder extracts (execve arguments passed through as the kernel wrote them)."""
    out = []
    for x in chain(e):
        recs = audit_exec(x, node=False, eoe=False)
        args = {f"a{i}": audit_value(a).strip('"') for i, a in enumerate(x.args)}
        data = {"audit": {"type": "SYSCALL", "id": str(x.serial), "syscall": "59", "success": "yes",
                          "pid": str(x.pid), "ppid": str(x.ppid), "uid": str(x.uid), "euid": str(x.uid),
                          "auid": "1000", "command": x.name[:15], "exe": x.exe, "cwd": x.cwd, "execve": args}}
        out.append(_wazuh(" ".join(recs), x.time, data, "/var/log/audit/audit.log", "auditd"))
    if e.connect:
        recs = audit_connect(e, node=False)[:-1]
        out.append(_wazuh(" ".join(recs), e.time + 0.5, None, "/var/log/audit/audit.log", "auditd"))
    return out


def wazuh_cmdline(e: Exec) -> list[bytes]:
    """Seed 000's setup: a command log read by Wazuh, the command in full_log."""
    return [_wazuh(e.command_line, e.time, None, "/var/log/cmdline", "")]


def wazuh_command(e: Exec) -> list[bytes]:
    """Wazuh's command decoder: the command in data.command, full_log holding a syslog line."""
    return [_wazuh(f"Nov 22 10:00:00 {HOST} bash[{e.pid}]: {e.user}: {e.command_line}", e.time,
                   {"command": e.command_line, "srcuser": e.user}, "journald", "bash")]


# -- plain command lines -------------------------------------------------------------------------------

def cmdline(e: Exec) -> list[bytes]:
    return [e.command_line.encode("utf-8", "surrogateescape")]


WRITERS = {
    "ecs": ecs, "auditd": auditd, "sysmon-syslog": sysmon_syslog, "sysmon-winlogbeat": sysmon_winlogbeat,
    "sysmon-evtx": sysmon_evtx, "sysmon-linux-json": sysmon_linux_json, "wazuh-audit": wazuh_audit,
    "wazuh-cmdline": wazuh_cmdline, "wazuh-command": wazuh_command, "cmdline": cmdline,
}
LINUX_FORMATS = ("ecs", "auditd", "sysmon-syslog", "sysmon-linux-json", "wazuh-audit", "wazuh-cmdline",
                 "wazuh-command", "cmdline")
WINDOWS_FORMATS = ("ecs", "sysmon-winlogbeat", "sysmon-evtx", "wazuh-cmdline", "cmdline")
