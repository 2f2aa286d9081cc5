"""Input formats: their names for `--format`, and how `auto` tells them apart, line by line."""

from __future__ import annotations

from typing import Any

from shellsieve.events.sysmon import looks_like_sysmon_xml
from shellsieve.events.wazuh import is_wazuh

__all__ = ["FORMATS", "JSON_FORMATS", "TEXT_FORMATS", "json_format", "text_format", "ECS_MARKERS"]

JSON_FORMATS = ("ecs", "sysmon", "wazuh")
TEXT_FORMATS = ("auditd", "sysmon-syslog", "cmdline")
FORMATS = ("auto", *JSON_FORMATS, *TEXT_FORMATS)

# Keys only the other JSON shapes have. A block of JSON lines holding none of them is all ECS and
# takes the raw-scan fast path without a per-line look.
ECS_MARKERS = (b'"winlog"', b'"Event"', b'"full_log"', b'"decoder"')


def json_format(doc: dict[str, Any]) -> str:
    """Which JSON shape a decoded object is: Sysmon (Winlogbeat or evtx dump), Wazuh, else ECS."""
    winlog = doc.get("winlog")
    if isinstance(winlog, dict) and isinstance(winlog.get("event_data"), dict):
        return "sysmon"
    event = doc.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return "sysmon"
    if is_wazuh(doc):
        return "wazuh"
    return "ecs"


def text_format(text: str) -> str:
    """auditd record, Sysmon for Linux XML in a syslog line, else a plain command line. A line with an
    audit header cut short is still auditd (counted as malformed there), not a command."""
    if "msg=audit(" in text:
        return "auditd"
    if looks_like_sysmon_xml(text):
        return "sysmon-syslog"
    return "cmdline"
