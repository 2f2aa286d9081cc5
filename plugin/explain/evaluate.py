"""A rule's expression walked on one event, keeping why it held or failed.

Every condition is decided by the very closure `run` confirms it with (compile/confirm.py
`build_check`, the same field database and pattern ids), so the verdict cannot drift from the
matcher's; only the and/or/not around the conditions is walked here, in the rule's own order.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shellsieve.compile.confirm import Check, EventContext, build_check
from shellsieve.compile.ruleset import Ruleset
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate

__all__ = ["Leaf", "Group", "Node", "Evaluator", "plain"]


class Leaf(msgspec.Struct, frozen=True):
    """One condition of the rule, whether it held, and the event's value of its field."""

    pred: Predicate
    held: bool
    value: Any  # the event's value, JSON-ready; None when the field is missing
    other: Any = None  # FIELDREF: the value of the field it is compared with


class Group(msgspec.Struct, frozen=True):
    """`all_of`: every condition held; `none_of`: no alternative held; `not`: the term under a
    `not` held (or failed), which decides the `not` the other way."""

    kind: str
    items: tuple[Node, ...]


Node = Leaf | Group


def plain(value: Any) -> Any:
    """A field value from a typed view or a dict as plain JSON data (a Raw number decoded)."""
    if isinstance(value, msgspec.Raw):
        return msgspec.json.decode(value)
    if isinstance(value, (msgspec.Struct, list, dict)):
        return msgspec.to_builtins(value, enc_hook=repr)
    return value


class Evaluator:
    """Explains expressions of `ruleset`'s rules on events; each condition's check built once."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rs = ruleset
        self._checks: dict[int, Check] = {}

    def context(self, view: Any) -> EventContext:
        """An event as the checks read it (its field scans through the ruleset's field database)."""
        return EventContext(view, self.rs.scan_field)

    def _check(self, pred: Predicate) -> Check:
        check = self._checks.get(id(pred))
        if check is None:
            ids = self.rs.text_ids
            check = build_check(pred, self.rs.accessors, lambda p: ids[id(p)], self.rs.regex_confirm)
            self._checks[id(pred)] = check
        return check

    def explain(self, expr: Expr, ctx: EventContext) -> tuple[bool, Node]:
        """Whether `expr` holds on the event, and why: for a failure, the first term of an `and`
        that failed (rule order), every alternative of an `or`; for a success, every term of an
        `and`, the first alternative of an `or` that held."""
        if isinstance(expr, Predicate):
            held = self._check(expr)(ctx)
            acc = self.rs.accessors
            other = plain(acc[str(expr.values[0])](ctx.view)) if expr.op is Op.FIELDREF else None
            return held, Leaf(expr, held, plain(acc[expr.field](ctx.view)), other)
        if isinstance(expr, Not):
            held, node = self.explain(expr.term, ctx)
            return not held, Group("not", (node,))
        results = [self.explain(t, ctx) for t in expr.terms]
        if isinstance(expr, AllOf):
            failed = next((node for held, node in results if not held), None)
            if failed is not None:
                return False, failed
            return True, Group("all_of", tuple(node for _, node in results))
        assert isinstance(expr, AnyOf)
        held_node = next((node for held, node in results if held), None)
        if held_node is not None:
            return True, held_node
        return False, Group("none_of", tuple(node for _, node in results))
