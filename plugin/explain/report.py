"""Per-rule explanations of one event, and their text and JSON renderings."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from shellsieve.compile.ruleset import CompiledRule, Ruleset
from shellsieve.diagnostics import printable
from shellsieve.explain.evaluate import Evaluator, Group, Leaf, Node
from shellsieve.explain.observe import Observed
from shellsieve.model.correlation import Correlation, Filter
from shellsieve.model.expr import LENGTH_OPS, TEXT_OPS, Op
from shellsieve.model.rule import Sequence

__all__ = ["RuleReport", "StepReport", "explain_rules", "condition", "render_text", "render_json"]

MATCHED, NOT_MATCHED, NO_ANCHOR = "matched", "not matched", "anchors did not fire"


class StepReport(msgspec.Struct):
    step: str  # "1", "2", ... or "until"
    held: bool
    why: Node


class RuleReport(msgspec.Struct):
    rule: CompiledRule
    anchors: bool  # its anchors fired in the line database: `run` confirms it on this event
    held: bool  # its conditions hold on this event, anchors aside (a sequence: never on one event)
    why: Node | None  # single-event rules
    steps: tuple[StepReport, ...] = ()  # sequence rules

    @property
    def verdict(self) -> str:
        if not self.anchors:
            return NO_ANCHOR
        return MATCHED if self.held and not self.steps else NOT_MATCHED


def explain_rules(ruleset: Ruleset, seen: Observed, chosen: list[CompiledRule]) -> list[RuleReport]:
    """An explanation per rule of `chosen`, on the event `seen`."""
    ev = Evaluator(ruleset)
    ctx = ev.context(seen.view)
    out = []
    for cr in chosen:
        anchors = cr.index in seen.candidates or cr.index in ruleset.always
        q = cr.rule.query
        if isinstance(q, Sequence):
            steps = [StepReport(str(i + 1), *ev.explain(s.query, ctx)) for i, s in enumerate(q.steps)]
            if q.until is not None:
                steps.append(StepReport("until", *ev.explain(q.until.query, ctx)))
            out.append(RuleReport(cr, anchors, False, None, tuple(steps)))
        else:
            assert not isinstance(q, (Correlation, Filter))  # never compiled (compile/meta.py)
            held, why = ev.explain(q, ctx)
            out.append(RuleReport(cr, anchors, held, why))
    return out


# (held, failed) wording per operator; a list of expected values reads "one of" / "any of"
_VERBS = {
    Op.EQ: ("is", "is not"), Op.WILDCARD: ("matches", "does not match"),
    Op.CONTAINS: ("contains", "does not contain"), Op.STARTSWITH: ("starts with", "does not start with"),
    Op.ENDSWITH: ("ends with", "does not end with"), Op.REGEX: ("matches regex", "does not match regex"),
    Op.CIDR: ("is in", "is not in"), Op.EXISTS: ("exists", "does not exist"),
    Op.LT: ("is <", "is not <"), Op.LE: ("is <=", "is not <="), Op.GT: ("is >", "is not >"),
    Op.GE: ("is >=", "is not >="), Op.LENGTH_LT: ("is <", "is not <"), Op.LENGTH_LE: ("is <=", "is not <="),
    Op.LENGTH_GT: ("is >", "is not >"), Op.LENGTH_GE: ("is >=", "is not >="), Op.LENGTH_EQ: ("is", "is not"),
    Op.FIELDREF: ("equals", "does not equal"),
}
SHOWN_VALUES = 8  # expected values shown in text; JSON has them all


def _json(v: Any) -> str:
    """A value as the rule and the event spell it: strings quoted, backslashes as they are (a
    Windows path or a regex reads as written), control characters escaped by `printable`."""
    if v is None:
        return "(missing)"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_json(e) if e is not None else "null" for e in v) + "]"
    return json.dumps(v, ensure_ascii=False, default=repr)


def condition(leaf: Leaf) -> str:
    """`process.parent.name: "bash" is not one of ["apache2", "nginx"]`, control characters escaped."""
    p = leaf.pred
    verb = _VERBS[p.op][0 if leaf.held else 1]
    field = f"length({p.field})" if p.op in LENGTH_OPS else p.field
    value = leaf.value
    if p.op in LENGTH_OPS and isinstance(value, (str, list)):
        value = len(value)
    if p.op is Op.EXISTS:
        text = f"{field} {verb}"
        return printable(text if value is None else f"{field}: {_json(value)} {verb}")
    if p.op is Op.FIELDREF:
        expected = f"field {p.values[0]} ({_json(leaf.other)})"
    elif len(p.values) == 1:
        expected = _json(p.values[0])
    else:
        shown = ", ".join(_json(v) for v in p.values[:SHOWN_VALUES])
        more = ", ..." if len(p.values) > SHOWN_VALUES else ""
        expected = f"{'one' if p.op in (Op.EQ, Op.CIDR) else 'any'} of [{shown}{more}]"
    # a regex states its own case flags
    case = " (case-sensitive)" if p.case_sensitive and p.op in (TEXT_OPS | {Op.EQ}) - {Op.REGEX} else ""
    return printable(f"{field}: {_json(value)} {verb} {expected}{case}")


_GROUPS = {"all_of": "all of:", "none_of": "none of:"}


def _lines(node: Node, indent: str, failing: bool = True) -> list[str]:
    """A failure's explanation, indented; under a `not`, what held (or failed) is the reason."""
    if isinstance(node, Leaf):
        return [indent + condition(node)]
    if node.kind == "not":
        label = "excluded by `not`:" if failing else "under `not`:"
        return [indent + label, *_lines(node.items[0], indent + "  ", not failing)]
    out = [indent + _GROUPS[node.kind]]
    for item in node.items:
        out += _lines(item, indent + "  ", failing)
    return out


def _steps(held: list[str]) -> str:
    if not held:
        return "no step"
    return ("step " if len(held) == 1 else "steps ") + ", ".join(held)


def render_text(reports: list[RuleReport], seen: Observed) -> str:
    out = [f"event read as {seen.format}; {len(reports)} rule{'' if len(reports) == 1 else 's'} explained"]
    if not reports:
        out.append("no rule's anchors fired on it: name a rule with --rule to see why it does not match")
    for r in reports:
        rule = r.rule.rule
        out.append("")
        out.append(printable(f"{rule.id}  {rule.name}"))
        out.append(printable(f"  {rule.location.path}:{rule.location.line}  ({rule.ruleset})"))
        verdict = r.verdict.upper() if r.anchors else f"({r.verdict})"
        if r.steps:
            n = len(rule.query.steps)  # type: ignore[union-attr]  # steps are traced for a sequence rule only
            held = [s.step for s in r.steps if s.held]
            out.append(f"  {verdict}: a sequence of {n} steps needs {n} events; this event satisfies "
                       f"{_steps(held)}")
            for s in r.steps:
                label = "until" if s.step == "until" else f"step {s.step}"
                out.append(f"  {label}: {'holds' if s.held else 'fails'}")
                if not s.held:
                    out += _lines(s.why, "    ")
            continue
        if r.held:
            out.append(f"  {verdict}" + ("" if r.anchors else ": its conditions hold, but `run` does not check them"))
            continue
        out.append(f"  {verdict}")
        assert r.why is not None
        out += _lines(r.why, "    ")
    return "\n".join(out) + "\n"


def _node_json(node: Node) -> dict[str, Any]:
    if isinstance(node, Group):
        return {node.kind: [_node_json(i) for i in node.items]}
    p = node.pred
    out: dict[str, Any] = {"condition": condition(node), "field": p.field, "op": p.op.value,
                           "expected": list(p.values), "case_sensitive": p.case_sensitive,
                           "value": node.value, "held": node.held}
    if p.location is not None:
        out["line"] = p.location.line
    return out


def render_json(reports: list[RuleReport], seen: Observed) -> str:
    """One JSON document: the event as the rules read it and one object per rule."""
    rules = []
    for r in reports:
        rule = r.rule.rule
        item: dict[str, Any] = {"id": rule.id, "name": rule.name, "ruleset": rule.ruleset,
                                "file": rule.location.path, "line": rule.location.line,
                                "verdict": r.verdict, "matched": r.verdict == MATCHED, "anchors": r.anchors}
        if r.steps:
            item["steps"] = [{"step": s.step, "held": s.held, "failed": None if s.held else _node_json(s.why)}
                             for s in r.steps]
        else:
            item["held"] = r.held
            item["failed"] = None if r.held or r.why is None else _node_json(r.why)
        rules.append(item)
    doc = {"format": seen.format, "event": seen.doc, "rules": rules}
    return msgspec.json.encode(doc, enc_hook=repr).decode() + "\n"
