"""Sysmon events -> ECS: Windows as JSON (Winlogbeat's `winlog.event_data`, evtx dumpers'
`Event.System` / `Event.EventData`) and Linux as the XML event inside a syslog line.

All shapes reduce to (event id, EventData name -> value, computer, time), mapped by SYSMON_FIELDS;
the raw EventData is kept under winlog.event_data, as Winlogbeat writes it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from shellsieve.events.argv import split_windows
from shellsieve.events.ecs import basename, to_int
from shellsieve.model.fields import SYSMON_FIELDS

__all__ = ["from_winlogbeat", "from_evtx_json", "from_syslog_xml", "sysmon_ecs", "looks_like_sysmon_xml"]

_INT_FIELDS = {"process.pid", "process.parent.pid", "destination.port", "source.port"}
_HASHES = {"MD5": "process.hash.md5", "SHA1": "process.hash.sha1", "SHA256": "process.hash.sha256",
           "IMPHASH": "process.pe.imphash"}


def _user_and_hashes(flat: dict[str, Any], data: dict[str, Any]) -> None:
    """`User` (DOMAIN\\name) and `Hashes` (ALGO=digest,...)."""
    user = data.get("User")
    if isinstance(user, str) and user not in ("", "-"):
        domain, sep, name = user.partition("\\")
        flat["user.name"] = name if sep else user
        flat["user.domain"] = domain if sep else None
    hashes = data.get("Hashes")
    if isinstance(hashes, str):
        for part in hashes.split(","):
            algo, _, digest = part.partition("=")
            if algo.strip().upper() in _HASHES and digest:
                flat[_HASHES[algo.strip().upper()]] = digest.strip().lower()


def _category(flat: dict[str, Any], event_id: int | None, data: dict[str, Any], windows: bool) -> None:
    """ECS category, type and action of the event ids the rules use: 1 start, 3 connection, 5 end."""
    if event_id == 1:
        flat["event.category"] = ["process"]
        flat["event.type"] = ["start"]
        flat["event.action"] = "start" if windows else "exec"
    elif event_id == 3:
        flat["event.category"] = ["network"]
        flat["event.type"] = ["start"]
        initiated = str(data.get("Initiated", "")).lower()
        flat["event.action"] = "connection_attempted" if initiated != "false" else "connection_accepted"
    elif event_id == 5:
        flat["event.category"] = ["process"]
        flat["event.type"] = ["end"]
        flat["event.action"] = "end"


def sysmon_ecs(event_id: int | None, data: dict[str, Any], computer: str | None, windows: bool,
               time: str | None = None) -> dict[str, Any]:
    """Flat ECS fields of one Sysmon event."""
    flat: dict[str, Any] = {
        "event.module": "sysmon",
        "event.code": str(event_id) if event_id is not None else None,
        "host.os.type": "windows" if windows else "linux",
        "@timestamp": time,
    }
    if computer:
        flat["host.name"] = flat["host.id"] = computer  # joins (sequence `by host.id`) need a value
    for name, value in data.items():
        flat[f"winlog.event_data.{name}"] = value
        ecs = SYSMON_FIELDS.get(name)
        if ecs is None or ecs.startswith("winlog.") or value in (None, "", "-"):
            continue
        flat[ecs] = to_int(value) if ecs in _INT_FIELDS else value
    for ecs, key in (("process.name", "Image"), ("process.parent.name", "ParentImage")):
        if isinstance(data.get(key), str) and data[key] not in ("", "-"):  # hostile JSON: any type
            flat[ecs] = basename(data[key], windows)
    # Windows command lines follow CommandLineToArgvW's quoting; Sysmon for Linux writes argv joined by
    # spaces, without quoting, so only the whitespace boundaries are known.
    split = split_windows if windows else str.split
    for prefix, key in (("process", "CommandLine"), ("process.parent", "ParentCommandLine")):
        cmd = data.get(key)
        if isinstance(cmd, str) and cmd not in ("", "-"):
            args = split(cmd)
            flat[f"{prefix}.args"] = args
            flat[f"{prefix}.args_count"] = len(args)
    _user_and_hashes(flat, data)
    _category(flat, event_id, data, windows)
    if flat.get("@timestamp") is None and isinstance(data.get("UtcTime"), str):
        flat["@timestamp"] = data["UtcTime"].replace(" ", "T") + "Z"
    return flat


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else: `--format sysmon` sends any JSON line here."""
    return value if isinstance(value, dict) else {}


def from_winlogbeat(doc: dict[str, Any]) -> dict[str, Any]:
    winlog = _obj(doc.get("winlog"))
    data = winlog.get("event_data") or {}
    windows = "linux" not in str(winlog.get("provider_name", "")).lower()
    ts = doc.get("@timestamp")
    return sysmon_ecs(to_int(winlog.get("event_id")), data if isinstance(data, dict) else {},
                      winlog.get("computer_name"), windows, ts if isinstance(ts, str) else None)


def _attr(node: Any, name: str) -> Any:
    """An XML attribute as JSON dumpers write it: `#attributes`, `@Name`, or a plain key."""
    if not isinstance(node, dict):
        return None
    attrs = node.get("#attributes")
    if isinstance(attrs, dict) and name in attrs:
        return attrs[name]
    return node.get("@" + name, node.get(name))


def _text_of(node: Any) -> Any:
    return node.get("#text", node.get("text", node.get("value"))) if isinstance(node, dict) else node


def _event_data(node: Any) -> dict[str, Any]:
    """EventData as a name -> value map: plain, or `Data: [{"@Name": .., "#text": ..}]`."""
    if not isinstance(node, dict):
        return {}
    items = node.get("Data")
    if isinstance(items, dict):
        items = [items]
    if isinstance(items, list):
        out: dict[str, Any] = {}
        for item in items:
            name = _attr(item, "Name")
            if isinstance(name, str):
                out[name] = _text_of(item)
        return out
    return {k: v for k, v in node.items() if not k.startswith(("#", "@"))}


def from_evtx_json(doc: dict[str, Any]) -> dict[str, Any]:
    event = _obj(doc.get("Event"))
    system = _obj(event.get("System"))
    provider = str(_attr(system.get("Provider"), "Name") or "")
    event_id = to_int(_text_of(system.get("EventID")))
    ts = _attr(system.get("TimeCreated"), "SystemTime")
    return sysmon_ecs(event_id, _event_data(event.get("EventData")), _text_of(system.get("Computer")),
                      "linux" not in provider.lower(), ts if isinstance(ts, str) else None)


def looks_like_sysmon_xml(text: str) -> bool:
    return "<Event" in text and "</Event>" in text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def from_syslog_xml(text: str) -> dict[str, Any] | None:
    """The `<Event>..</Event>` of a syslog line -> ECS; None when it is not a well-formed event."""
    start, end = text.find("<Event"), text.rfind("</Event>")
    if start < 0 or end < start or "<!" in text:  # no DTDs, no entities: a log line needs none
        return None
    try:
        root = ET.fromstring(text[start : end + len("</Event>")])
    except ET.ParseError:
        return None
    system: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for part in root:
        if _local(part.tag) == "System":
            for el in part:
                system[_local(el.tag)] = el
        elif _local(part.tag) == "EventData":
            for el in part:
                name = el.get("Name")
                if name is not None:
                    data[name] = el.text or ""
    provider = system.get("Provider")
    windows = "linux" not in (provider.get("Name", "") if provider is not None else "").lower()
    eid = system.get("EventID")
    computer = system.get("Computer")
    created = system.get("TimeCreated")
    return sysmon_ecs(to_int(eid.text if eid is not None else None), data,
                      computer.text if computer is not None else None, windows,
                      created.get("SystemTime") if created is not None else None)
