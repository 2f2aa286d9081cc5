"""Build the one Hyperscan database; when the joint compile fails, find the rules to blame."""

from __future__ import annotations

from collections.abc import Sequence

import hyperscan as hs

__all__ = ["Pattern", "compile_database", "pattern_error"]


class Pattern:
    """One expression of the database with its id and flags, and the rule it came from."""

    __slots__ = ("expression", "flags", "rule_index")

    def __init__(self, expression: bytes, flags: int, rule_index: int | None) -> None:
        self.expression = expression
        self.flags = flags
        self.rule_index = rule_index  # None: shared (raw anchors, the escape marker)


def compile_database(patterns: Sequence[Pattern]) -> hs.Database:
    """All patterns in one block-mode database; ids are the list positions."""
    db = hs.Database(mode=hs.HS_MODE_BLOCK)
    db.compile(
        expressions=[p.expression for p in patterns],
        ids=list(range(len(patterns))),
        elements=len(patterns),
        flags=[p.flags for p in patterns],
    )
    return db


def pattern_error(expression: bytes, flags: int) -> str | None:
    """Hyperscan's message for one pattern alone, or None if it compiles.

    The binding's error for a joint compile names no pattern ("Back-references are unsupported."),
    so each pattern is tried on its own to name the rule and file.
    """
    try:
        hs.Database(mode=hs.HS_MODE_BLOCK).compile(expressions=[expression], ids=[0], elements=1, flags=[flags])
    except hs.error as exc:
        return str(exc)
    return None
