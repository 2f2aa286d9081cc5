"""Wazuh alerts and archives JSON -> ECS.

Wazuh's `audit` log format joins the records of one audit event into `full_log`; when it holds
records they are decoded exactly like raw auditd (arguments un-hexed, parent from the pid table).
Otherwise the decoded `data.audit.*` fields are used, then `data.command` (Wazuh's command
decoder), then `full_log` itself, the text a Wazuh rule on `full_log` reads.

A document that holds a command and no audit records is a process start, as a plain command line
is: `data.command` (the sudo and shell-logger decoders extract the command run), or a `full_log`
that no decoder read (a command log, as seed 000's /var/log/cmdline). Its arguments are split as a
shell would and it gets `event.category: process`, so Sigma `process_creation` rules and Elastic
process rules read it. A `full_log` a decoder read (sshd, a web access log ...) is not a command.
"""

from __future__ import annotations

import re
from typing import Any

from shellsieve.events.auditd import Record, looks_like_audit, parse_record, to_ecs
from shellsieve.events.cmdline import from_cmdline
from shellsieve.events.ecs import to_int
from shellsieve.events.pids import PidTable
from shellsieve.model.fields import WAZUH_FIELDS

__all__ = ["from_wazuh", "is_command", "is_wazuh"]

_RECORD_START = re.compile(r"(?=(?:node=\S+\s+)?type=[A-Za-z0-9_]+\s+msg=audit\()")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")
_NEEDS_HEX = re.compile(rb'[\x00-\x20"\x7f-\xff]')


def is_wazuh(doc: dict[str, Any]) -> bool:
    return "full_log" in doc or ("decoder" in doc and "agent" in doc)


def _get(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _undecoded(doc: dict[str, Any]) -> bool:
    """No Wazuh decoder read the line: `decoder` absent, empty, or without a name (archives write `{}`)."""
    decoder = doc.get("decoder")
    return not decoder or (isinstance(decoder, dict) and not decoder.get("name"))


def is_command(flat: dict[str, Any]) -> bool:
    """Is the decoded Wazuh document a command line with no OS of its own (the router gives it one, as it
    gives a plain command line)?"""
    return flat.get("event.module") == "wazuh" and flat.get("event.category") == ["process"] and (
        "host.os.type" not in flat)


def _arg_token(value: str) -> str:
    """A decoded execve value as an audit field token. Wazuh passes the kernel's hex through; a value
    is taken as hex only when it decodes to UTF-8 text that would have forced the kernel to hex-encode
    it (so a word such as DEADBEEF stays a word)."""
    if _HEX.fullmatch(value):
        raw = bytes.fromhex(value)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return '"' + value + '"'
        if _NEEDS_HEX.search(raw):
            return value
    return '"' + value + '"'


def _records_from_data(audit: dict[str, Any]) -> list[Record]:
    """Rebuild the SYSCALL / EXECVE / CWD records from Wazuh's decoded `data.audit` fields."""
    t = 0.0
    serial = to_int(audit.get("id")) or 0
    sc: dict[str, str] = {}
    for key in ("syscall", "arch", "success", "pid", "ppid", "uid", "euid", "auid", "gid"):
        if audit.get(key) is not None:
            sc[key] = str(audit[key])
    for key, name in (("command", "comm"), ("exe", "exe"), ("key", "key")):
        if isinstance(audit.get(key), str):
            sc[name] = '"' + audit[key] + '"'
    records = [Record("SYSCALL", t, serial, "", sc, {})]
    execve = audit.get("execve")
    if isinstance(execve, dict):
        args = {k: _arg_token(str(v)) for k, v in execve.items() if re.fullmatch(r"a\d+", k)}
        args["argc"] = str(len(args))
        records.append(Record("EXECVE", t, serial, "", args, {}))
    if isinstance(audit.get("cwd"), str):
        records.append(Record("CWD", t, serial, "", {"cwd": '"' + audit["cwd"] + '"'}, {}))
    return records


def from_wazuh(doc: dict[str, Any], pids: PidTable, passwd: dict[str, str]) -> dict[str, Any]:
    full_log = doc.get("full_log")
    audit = _get(doc, "data.audit")
    host = _get(doc, "agent.name")
    records: list[Record] = []
    if isinstance(full_log, str) and looks_like_audit(full_log):
        records = [r for part in _RECORD_START.split(full_log) if (r := parse_record(part)) is not None]
    logged = bool(records)  # the records themselves, with their own time, not rebuilt from data.audit
    if not records and isinstance(audit, dict):
        records = _records_from_data(audit)
    flat: dict[str, Any] = {}
    if records:
        for r in records:
            r.node = r.node or (host if isinstance(host, str) else "")
        flat = to_ecs(records, pids, passwd)
        if not logged:
            flat.pop("@timestamp", None)  # rebuilt records carry no time of their own
    if "process.command_line" not in flat:
        cmd = _get(doc, "data.command")
        if isinstance(cmd, str) or (isinstance(full_log, str) and _undecoded(doc)):
            command = cmd if isinstance(cmd, str) else str(full_log)
            flat.update((k, v) for k, v in from_cmdline(command).items() if k not in flat)
        else:
            flat["process.command_line"] = full_log
    for wazuh in ("data.srcuser", "data.dstuser"):
        if isinstance(v := _get(doc, wazuh), str):
            flat.setdefault(WAZUH_FIELDS[wazuh], v)
    flat["message"] = full_log if isinstance(full_log, str) else None
    flat["event.module"] = "wazuh"
    ts = doc.get("timestamp")
    flat.setdefault("@timestamp", ts if isinstance(ts, str) else None)
    if isinstance(host, str):
        flat.setdefault("host.name", host)
        flat.setdefault("host.id", host)
    return flat
