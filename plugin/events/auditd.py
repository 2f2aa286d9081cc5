"""Linux auditd records -> one ECS event per audit event.

A process execution is several records sharing `msg=audit(<time>:<serial>)`: SYSCALL (pid, ppid,
uids, comm, exe), EXECVE (the arguments), CWD, PATH (one per file touched), PROCTITLE, then EOE.
`parse_record` reads one line; `AuditAssembler` groups records until EOE or a timeout;
`to_ecs` turns a group into ECS fields (with AUDITD_FIELDS' names), resolving the parent through
a `PidTable`.

Untrusted strings (arguments, comm, exe, cwd, paths, proctitle, key) are written by the kernel
either in double quotes, as they are, or unquoted as hex when they hold a space, a quote, a control
byte or a byte above 0x7e. An argument longer than the record allows arrives as `aN_len=<bytes>`
and the pieces `aN[0]=`, `aN[1]=`...; a long argv continues in further EXECVE records.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shellsieve.events.argv import shell_join
from shellsieve.events.ecs import iso_time, to_int
from shellsieve.events.pids import PidTable, ProcInfo

__all__ = ["Record", "AuditEvent", "AuditAssembler", "parse_record", "to_ecs", "load_passwd",
           "looks_like_audit", "SYSCALL_EVENT_TYPES"]

_HEADER = re.compile(r"(?:node=(\S+)\s+)?type=([A-Za-z0-9_]+)\s+msg=audit\((\d+)(?:\.(\d+))?:(\d+)\):")
_FIELD = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)=("[^"]*"|'[^']*'|\S*)""")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# The syslog header before a record that came by syslog (audisp-syslog, rsyslog's imfile, a
# forwarder): RFC 5424 (`<PRI>1 TIMESTAMP HOST APP ...`) or BSD / RFC 3164 (`[<PRI>]Mmm dd hh:mm:ss
# HOST TAG:`, also with an ISO timestamp as rsyslog and journald write it). Its HOST names the
# machine when auditd wrote no `node=`: records of several hosts in one stream stay apart.
_SYSLOG_HOST = re.compile(
    r"\s*(?:<\d{1,3}>)?(?:1 +\S+|[A-Z][a-z]{2} +\d{1,2} +\d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\S+)"
    r" +([A-Za-z0-9][A-Za-z0-9._:%-]{0,254})(?: +\S| *$)")

# Records that belong to a syscall event: they wait for the rest of their event (until EOE).
# Any other type (USER_CMD, USER_LOGIN, SERVICE_START ...) is a whole event on its own.
SYSCALL_EVENT_TYPES = frozenset({
    "SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE", "SOCKADDR", "EOE", "FD_PAIR", "OBJ_PID",
    "MMAP", "BPRM_FCAPS", "CAPSET", "IPC", "NETFILTER_CFG", "KERN_MODULE", "SOCKETCALL",
})
_UNSET_ID = "4294967295"  # auid / ses of a process with no login session

# syscall numbers by audit arch, for the few the ECS mapping cares about (ENRICHED logs name them).
_SYSCALLS: dict[str, dict[int, str]] = {
    "c000003e": {59: "execve", 322: "execveat", 42: "connect", 43: "accept", 288: "accept4", 49: "bind"},
    "c00000b7": {221: "execve", 281: "execveat", 203: "connect", 202: "accept", 242: "accept4", 200: "bind"},
    "40000003": {11: "execve", 358: "execveat", 362: "connect", 364: "accept4", 361: "bind"},
}
_EXEC = frozenset({"execve", "execveat"})


def looks_like_audit(text: str) -> bool:
    return "msg=audit(" in text and _HEADER.search(text) is not None


@dataclass
class Record:
    """One audit record line, fields kept as written (quotes included) until a decoder needs them."""

    type: str
    time: float
    serial: int
    node: str
    fields: dict[str, str]
    enriched: dict[str, str]  # ENRICHED log format: names resolved by auditd (UID="www-data", SYSCALL=execve)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.node, f"{self.time:.3f}", self.serial)


def parse_record(text: str) -> Record | None:
    """One line (with or without a syslog / `node=` prefix) -> Record; None if it has no audit header.

    `node` is the best name of the host the record is from: auditd's `node=`, else the host of a
    syslog header; else empty (the filter's own host, see to_ecs)."""
    m = _HEADER.search(text)
    if m is None:
        return None
    node, rtype, sec, frac, serial = m.groups()
    if node is None and m.start() > 0:
        sm = _SYSLOG_HOST.match(text, 0, m.start())
        node = sm.group(1) if sm else None
    body = text[m.end():]
    raw, _, extra = body.partition("\x1d")
    fields = dict(_FIELD.findall(raw))
    enriched = {k: _unquote(v) for k, v in _FIELD.findall(extra)} if extra else {}
    t = float(f"{sec}.{frac}") if frac else float(sec)
    return Record(rtype, t, int(serial), node or "", fields, enriched)


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'" else v


def _string_bytes(v: str | None) -> bytes | None:
    """An untrusted-string field: quoted -> as written; unquoted -> hex; (null) / (none) -> absent."""
    if v is None or v in ("(null)", "(none)", ""):
        return None
    if v[0] == '"':
        return v[1:-1].encode("utf-8", "surrogateescape") if v.endswith('"') and len(v) > 1 else v[1:].encode()
    if _HEX.fullmatch(v):
        return bytes.fromhex(v)
    if _HEX.fullmatch(v[:-1]):  # odd length: a record cut inside its hex; decode what is whole
        return bytes.fromhex(v[:-1])
    return v.encode("utf-8", "surrogateescape")  # neither: keep what is there


def _text(b: bytes | None) -> str | None:
    # Invalid UTF-8 stays visible as \xNN, the same way a text line's `message` shows it.
    return None if b is None else b.decode("utf-8", "backslashreplace")


def _string(v: str | None) -> str | None:
    return _text(_string_bytes(v))


def _cut(v: str) -> bool:
    """A value that cannot be whole: a quote never closed, or hex of odd length."""
    if v.startswith('"'):
        return len(v) < 2 or not v.endswith('"')
    return bool(v) and len(v) % 2 == 1 and _HEX.fullmatch(v[:-1]) is not None


@dataclass
class _Args:
    args: list[str]
    argc: int | None
    truncated: bool


def _execve_args(records: list[Record]) -> _Args | None:
    fields: dict[str, str] = {}
    for r in records:
        if r.type == "EXECVE":
            fields.update(r.fields)
    if not fields:
        return None
    argc = to_int(fields.get("argc"))
    args: list[str] = []
    truncated = False
    i = 0
    while argc is None or i < argc:
        whole = fields.get(f"a{i}")
        if whole is not None:
            args.append(_string(whole) or "")
            truncated = truncated or _cut(whole)
        elif f"a{i}_len" in fields or f"a{i}[0]" in fields:
            pieces = []
            k = 0
            while (piece := fields.get(f"a{i}[{k}]")) is not None:
                pieces.append(_string_bytes(piece) or b"")
                k += 1
            joined = b"".join(pieces)
            want = to_int(fields.get(f"a{i}_len"))
            # aN_len is the full length (of the hex text when encoded): far short means lost pieces
            if want is not None and len(joined) < want // 2:
                truncated = True
            args.append(_text(joined) or "")
        else:
            if argc is not None:
                truncated = True
            break
        i += 1
    return _Args(args, argc, truncated)


def _proctitle(records: list[Record]) -> list[str] | None:
    for r in records:
        if r.type == "PROCTITLE":
            b = _string_bytes(r.fields.get("proctitle"))
            if b is not None:
                return [_text(p) or "" for p in b.split(b"\x00") if p != b""]
    return None


def _sockaddr(records: list[Record]) -> tuple[str, int] | None:
    for r in records:
        if r.type != "SOCKADDR":
            continue
        raw = r.fields.get("saddr", "")
        if not _HEX.fullmatch(raw):
            return None
        b = bytes.fromhex(raw)
        if len(b) < 2:
            return None
        family = int.from_bytes(b[:2], "little")
        if family == 2 and len(b) >= 8:  # AF_INET
            return str(ipaddress.IPv4Address(b[4:8])), int.from_bytes(b[2:4], "big")
        if family == 10 and len(b) >= 24:  # AF_INET6
            return str(ipaddress.IPv6Address(b[8:24])), int.from_bytes(b[2:4], "big")
    return None


def load_passwd(path: Path) -> dict[str, str]:
    """uid -> user name from a passwd(5) file; unreadable lines are skipped."""
    names: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit() and not line.startswith("#"):
            names.setdefault(parts[2], parts[0])
    return names


def _user_name(uid: str | None, enriched: str | None, passwd: dict[str, str]) -> str | None:
    if uid is None or uid == _UNSET_ID:
        return None
    if enriched and enriched not in ("unset", "?"):
        return enriched
    return passwd.get(uid)


def _entity_id(host: str, pid: int, rec: Record) -> str:
    """A process id unique across pid reuse: the host, the pid and the audit event that exec'd it."""
    own = f"{pid}@{rec.time:.3f}:{rec.serial}"
    return f"{host}/{own}" if host else own


def _syscall_name(f: dict[str, Any], en: dict[str, Any]) -> Any:
    """The syscall's name: auditd's enriched one, else looked up by arch and number, else the raw value."""
    syscall = en.get("SYSCALL")
    if syscall is None and "syscall" in f:
        num = to_int(f["syscall"])
        syscall = _SYSCALLS.get(f.get("arch", ""), {}).get(num) if num is not None else None
        syscall = syscall or f["syscall"]
    return syscall


def _users(flat: dict[str, Any], f: dict[str, Any], en: dict[str, Any], passwd: dict[str, str]) -> None:
    for ecs, key in (("user", "uid"), ("user.effective", "euid"), ("user.audit", "auid"), ("group", "gid")):
        uid = f.get(key)
        if uid is not None and uid != _UNSET_ID:
            flat[f"{ecs}.id"] = uid
            if ecs != "group":
                flat[f"{ecs}.name"] = _user_name(uid, en.get(key.upper()), passwd)


def _context(flat: dict[str, Any], records: list[Record], f: dict[str, Any]) -> None:
    """Rule keys, working directory, paths and outcome."""
    keys = _string(f.get("key"))
    if keys:
        flat["tags"] = keys.split("\x01")
    for r in records:
        if r.type == "CWD":
            flat["process.working_directory"] = _string(r.fields.get("cwd"))
    paths = [p for r in records if r.type == "PATH" if (p := _string(r.fields.get("name")))]
    if paths:
        flat["file.path"] = paths
    success = f.get("success")
    if success is not None:
        flat["event.outcome"] = "success" if success == "yes" else "failure"


def _command(flat: dict[str, Any], records: list[Record]) -> list[str] | None:
    """The command line from EXECVE (or PROCTITLE): returns its args."""
    argv = _execve_args(records)
    args = argv.args if argv else _proctitle(records)
    if args is not None:
        flat["process.args"] = args
        flat["process.args_count"] = argv.argc if argv and argv.argc is not None else len(args)
        flat["process.command_line"] = shell_join(args)
    if argv and argv.truncated:
        flat["auditd.truncated"] = True
    return args


def _parent(flat: dict[str, Any], parent: ProcInfo | None) -> None:
    if parent is not None:
        flat["process.parent.name"] = parent.name
        flat["process.parent.executable"] = parent.executable
        flat["process.parent.command_line"] = parent.command_line
        flat["process.parent.args"] = list(parent.args) if parent.args is not None else None
        flat["process.parent.entity_id"] = parent.entity_id


def _exec(flat: dict[str, Any], pids: PidTable, host: str, first: Record, args: list[str] | None,
          failed: bool) -> None:
    """An exec: a process start, remembered in `pids` (unless it failed) as its children's parent."""
    pid = flat["process.pid"]
    flat["event.category"] = ["process"]
    flat["event.type"] = ["info"] if failed else ["start"]
    flat["event.action"] = "exec"
    if not failed and pid is not None:
        eid = _entity_id(host, pid, first)
        flat["process.entity_id"] = eid
        pids.put(host, pid, ProcInfo(flat["process.name"], flat["process.executable"],
                                     flat.get("process.command_line"), tuple(args) if args is not None else None,
                                     eid))


def _known_process(flat: dict[str, Any], pids: PidTable, host: str, first: Record) -> None:
    """Another syscall: the process's entity id, and its command line when the event has none."""
    pid = flat["process.pid"]
    known = pids.get(host, pid)
    if known is None:  # first sight of a process that exec'd before the filter started
        known = ProcInfo(flat["process.name"], flat["process.executable"], None, None, _entity_id(host, pid, first))
        pids.put(host, pid, known)
    flat["process.entity_id"] = known.entity_id
    if "process.args" not in flat and known.args is not None:
        flat["process.args"] = list(known.args)
        flat["process.command_line"] = known.command_line


def _action(flat: dict[str, Any], records: list[Record], syscall: Any) -> None:
    dest = _sockaddr(records)
    if syscall == "connect" and dest is not None:
        flat["event.category"] = ["network"]
        flat["event.type"] = ["start"]
        flat["event.action"] = "connection_attempted"
        flat["destination.ip"], flat["destination.port"] = dest
    elif syscall:
        flat["event.action"] = syscall


def to_ecs(records: list[Record], pids: PidTable, passwd: dict[str, str], local_host: str = "") -> dict[str, Any]:
    """The records of one audit event -> flat ECS fields. Updates `pids` on a successful exec.

    Records without `node=` (auditd's default name_format) are `local_host`'s: a sidecar reads the
    audit log of the host it runs on, as Auditbeat does."""
    first = records[0]
    sc = next((r for r in records if r.type == "SYSCALL"), None)
    f = sc.fields if sc else first.fields
    en = sc.enriched if sc else first.enriched
    host = first.node or local_host
    flat: dict[str, Any] = {
        "@timestamp": iso_time(first.time),
        "event.module": "auditd",
        "auditd.sequence": first.serial,
        "auditd.message_type": list(dict.fromkeys(r.type for r in records)),
        "host.os.type": "linux",
    }
    if host:
        flat["host.name"] = flat["host.id"] = host  # joins (sequence `by host.id`) need a value
    syscall = _syscall_name(f, en)
    if syscall:
        flat["auditd.data.syscall"] = syscall
    flat["process.pid"], flat["process.parent.pid"] = to_int(f.get("pid")), to_int(f.get("ppid"))
    flat["process.name"], flat["process.executable"] = _string(f.get("comm")), _string(f.get("exe"))
    _users(flat, f, en, passwd)
    _context(flat, records, f)
    args = _command(flat, records)
    _parent(flat, pids.get(host, flat["process.parent.pid"]))
    if sc is None:
        _action(flat, records, syscall)
    elif syscall in _EXEC:
        _exec(flat, pids, host, first, args, failed=f.get("success") == "no")
    else:
        if flat["process.pid"] is not None:
            _known_process(flat, pids, host, first)
        _action(flat, records, syscall)
    return flat


@dataclass
class AuditEvent:
    """The records of one audit event and the output slots of their lines."""

    key: tuple[str, str, int]
    opened: float
    records: list[Record] = field(default_factory=list)
    slots: list[Any] = field(default_factory=list)
    complete: bool = False  # EOE seen (or a single-record event)


class AuditAssembler:
    """Groups records by (node, time, serial) until EOE; at most `max_open` events wait, each at most
    `timeout_s`, so an event whose EOE never comes (a lost or truncated record) still leaves."""

    def __init__(self, timeout_s: float = 0.5, max_open: int = 4096) -> None:
        self.timeout_s = timeout_s
        self.max_open = max_open
        self._open: OrderedDict[tuple[str, str, int], AuditEvent] = OrderedDict()
        self.timed_out = 0
        self.evicted = 0

    @property
    def waiting(self) -> int:
        return len(self._open)

    def add(self, rec: Record, slot: Any, now: float) -> list[AuditEvent]:
        """File `rec`; returns the events this record finished (its own, and any evicted)."""
        ev = self._open.get(rec.key)
        done: list[AuditEvent] = []
        if ev is None:
            ev = AuditEvent(rec.key, now)
            if rec.type not in SYSCALL_EVENT_TYPES:
                ev.records.append(rec)
                ev.slots.append(slot)
                ev.complete = True
                return [ev]
            self._open[rec.key] = ev
            if len(self._open) > self.max_open:
                _, old = self._open.popitem(last=False)
                self.evicted += 1
                done.append(old)
        ev.records.append(rec)
        ev.slots.append(slot)
        if rec.type == "EOE":
            ev.complete = True
            del self._open[rec.key]
            done.append(ev)
        return done

    def expired(self, now: float) -> list[AuditEvent]:
        """Events that waited `timeout_s` without their EOE, oldest first."""
        out: list[AuditEvent] = []
        while self._open:
            ev = next(iter(self._open.values()))
            if now - ev.opened < self.timeout_s:
                break
            self._open.popitem(last=False)
            self.timed_out += 1
            out.append(ev)
        return out

    def next_deadline(self) -> float | None:
        if not self._open:
            return None
        return next(iter(self._open.values())).opened + self.timeout_s

    def drain(self) -> list[AuditEvent]:
        out = list(self._open.values())
        self._open.clear()
        return out

