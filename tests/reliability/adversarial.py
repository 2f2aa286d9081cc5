"""Adversarial long lines built from a ruleset's own anchors: each anchor literal (or each clause's
literals together) repeated to the size asked, in the shapes an attacker controls: an ECS command
line, an ECS argument array, a plain-text command line; plus the escape marker and one long token."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from shellsieve.compile.anchors import Clause, anchor_clauses
from shellsieve.model.rule import Rule, Sequence


def _value(text: bytes) -> str | None:
    """The string an anchor literal (JSON-escaped bytes, maybe with its string's quotes) stands for."""
    inner = text[1:] if text.startswith(b'"') else text
    if inner.endswith(b'"') and not inner.endswith(b'\\"'):
        inner = inner[:-1]
    try:
        value = msgspec.json.decode(b'"' + inner + b'"')
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, str) and value.strip() else None


def clauses(rules: list[Rule]) -> list[Clause]:
    """Every anchor clause of every query of `rules`, each once, in rule order."""
    out: dict[Clause, None] = {}
    for rule in rules:
        q = rule.query
        queries = [s.query for s in q.steps] + ([q.until.query] if q.until else []) if isinstance(q, Sequence) else [q]
        for expr in queries:
            for c in anchor_clauses(expr) or ():
                out.setdefault(c)
    return list(out)


def units(clause: Clause) -> list[str]:
    """One string per set of the clause: its first literal that is text (a regex anchor has none)."""
    out = []
    for lits in clause:
        v = next((x for lit in lits if not lit.regex and (x := _value(lit.text)) is not None), None)
        if v is not None:
            out.append(v)
    return out


def _fill(unit: str, size: int) -> str:
    return (unit * (size // max(1, len(unit.encode())) + 1))[:size]


def lines_for(parts: list[str], size: int) -> Iterator[tuple[str, bytes]]:
    """(shape, line without its newline) of about `size` bytes for one clause's strings."""
    unit = " ".join(parts) + " "
    yield "ecs-command-line", msgspec.json.encode({"process": {"command_line": _fill(unit, size)}})
    n = size // (sum(len(p) + 3 for p in parts) or 1) + 1
    yield "ecs-args", msgspec.json.encode({"process": {"args": parts * n}})
    text = _fill(unit, size).replace("\n", " ")
    yield "text", text.encode()


def generic_lines(size: int) -> Iterator[tuple[str, bytes]]:
    """Lines every ruleset must take in linear time whatever its anchors."""
    yield "text-token", b"a" * size
    yield "text-words", b"a " * (size // 2)
    yield "escape-marker", b'{"process":{"command_line":"' + b"\\/" * (size // 2) + b'"}}'
    yield "unicode-escapes", b'{"process":{"command_line":"' + b"\\u0061" * (size // 6) + b'"}}'
    yield "quoted-args", b"'a' " * (size // 4)
