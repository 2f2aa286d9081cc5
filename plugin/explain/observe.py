"""One event through the real engine, as `run` reads it: its decoded view and its candidate rules.

The input goes through `Engine` (framing, format detection, envelopes, auditd assembly, the
Sysmon and Wazuh decoders) twice, with the matcher's `observer` set: once as `run` runs, which
gives the rules whose anchors fired in the line database; once with the prefilter off, where
every event reaches the confirm stage, which gives the event's view even when no anchor fired.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings

__all__ = ["Observed", "ExplainError", "observe", "one_line"]


class ExplainError(Exception):
    """Input `explain` cannot work with; the message names it."""


class Observed(msgspec.Struct):
    """The event as the matcher sees it: `view` is what conditions read, `doc` the whole event."""

    view: Any
    doc: dict[str, Any]
    format: str
    candidates: frozenset[int]  # indices into ruleset.rules whose anchors fired


def one_line(data: bytes) -> bytes:
    """A pretty-printed JSON event (a file written by hand or by jq) as the one line `run` takes;
    anything else as it came."""
    if data.lstrip()[:1] == b"{" and data.strip().count(b"\n"):
        try:
            doc = msgspec.json.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
            return data
        if isinstance(doc, dict):
            return msgspec.json.encode(doc) + b"\n"
    return data


def _feed(ruleset: Ruleset, settings: Settings, data: bytes, prefilter: bool
          ) -> tuple[list[tuple[Any, dict[str, Any], frozenset[int]]], Engine]:
    seen: list[tuple[Any, dict[str, Any], frozenset[int]]] = []
    engine = Engine(ruleset, settings)
    engine.matcher.prefilter = prefilter
    # the event as it came: a copy, since a hit enriches `doc` in place after the observer
    engine.matcher.observer = lambda view, doc, rules: seen.append((view, msgspec.to_builtins(doc), rules))
    stream = engine.stream()
    stream.feed(data, 0.0)
    stream.close(0.0)
    engine.finish()
    return seen, engine


def observe(ruleset: Ruleset, settings: Settings, data: bytes, name: str) -> Observed:
    """The one event in `data` (named `name` in errors), decoded and scanned as `run` does."""
    data = one_line(data)
    if not data.strip():
        raise ExplainError(f"{name}: no event")
    if not data.endswith(b"\n"):
        data += b"\n"
    every, engine = _feed(ruleset, settings, data, prefilter=False)
    if len(every) != 1:
        bad = ", ".join(f"{n} {reason}" for reason, n in engine.stats.malformed.items() if n)
        raise ExplainError(f"{name}: {engine.stats.lines_in} lines make {len(every)} events"
                           f"{f' (malformed: {bad})' if bad else ''}; explain takes one event")
    view, doc = every[0][:2]
    formats = [f for f, n in engine.stats.formats.items() if n]
    candidates, _ = _feed(ruleset, settings, data, prefilter=True)
    fired = candidates[0][2] if candidates else frozenset()
    return Observed(view, doc, formats[0] if len(formats) == 1 else "/".join(formats), fired)
