"""Exceptions files (YAML) -> RuleException entries and diagnostics, each with file:line.

The file is a list of entries (docs/exceptions.md):

    - rules: [100103, 9f1c...]          # a rule id, a list of ids, or `all`
      comment: nightly backup opens this socket   # required: why
      expires: 2027-03-31               # optional: applies through that day (UTC)
      when:                             # every condition must hold
        - field: process.parent.executable
          matches: /opt/backup/*
        - field: source.ip
          cidr: [10.0.0.0/8, 192.168.0.0/16]

It is read as PyYAML nodes (`yaml.compose`), so every problem names its line. Collect, then decide:
an entry with an error is left out and reported; an expired entry is left out with a warning.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from pathlib import Path

import yaml

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.model.exceptions import OPERATORS, Condition, RuleException

__all__ = ["load_exceptions", "load_exception_files"]

_ENTRY_KEYS = ("rules", "comment", "expires", "when")
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


class _Bad(Exception):
    """One problem with an entry: the diagnostic it becomes."""

    def __init__(self, code: Code, node: yaml.Node, construct: str, message: str, rule_id: str | None = None):
        super().__init__(message)
        self.code, self.node, self.construct, self.rule_id = code, node, construct, rule_id


def _at(path: str, node: yaml.Node) -> Location:
    return Location(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _text(node: yaml.Node, what: str) -> str:
    """A scalar as text (a YAML bool as `true`/`false`, as JSON writes it); _Bad for anything else."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
        raise _Bad(Code.EXC_SCHEMA, node, what, f"{what} must be a value")
    text: str = node.value  # a scalar node's value is its text (the stub types it Any)
    return text.lower() if node.tag == _BOOL else text


def _texts(node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
    """A scalar or a non-empty list of scalars, each with its node."""
    if isinstance(node, yaml.SequenceNode):
        if not node.value:
            raise _Bad(Code.EXC_SCHEMA, node, what, f"{what} is an empty list")
        return [(_text(n, what), n) for n in node.value]
    return [(_text(node, what), node)]


def _mapping(node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping's keys -> (key node, value node); _Bad for a duplicate key or a non-mapping."""
    if not isinstance(node, yaml.MappingNode):
        raise _Bad(Code.EXC_SCHEMA, node, what, f"{what} must be a mapping")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        key = _text(k, f"a key of {what}")
        if key in out:
            raise _Bad(Code.EXC_SCHEMA, k, key, f"duplicate key {key!r}")
        out[key] = (k, v)
    return out


def _expires(node: yaml.Node) -> datetime.datetime:
    """A date (the entry applies through that day, UTC) or a date and time (naive: UTC)."""
    text = _text(node, "expires")
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC) + datetime.timedelta(1)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(Code.EXC_VALUE, node, f"expires: {text}",
                   "expires must be a date (2027-03-31) or date and time (2027-03-31T18:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _condition(node: yaml.Node, path: str, fields: frozenset[str] | None) -> Condition:
    keys = _mapping(node, "a condition")
    if "field" not in keys:
        raise _Bad(Code.EXC_SCHEMA, node, "", "a condition needs `field`")
    field = _text(keys["field"][1], "field")
    if fields is not None and field not in fields:
        raise _Bad(Code.EXC_UNKNOWN_FIELD, keys["field"][1], f"field: {field}",
                   f"field {field!r} is not a field the engine can read")
    ops = [k for k in keys if k != "field"]
    unknown = [k for k in ops if k not in OPERATORS]
    if unknown:
        raise _Bad(Code.EXC_SCHEMA, keys[unknown[0]][0], unknown[0],
                   f"unknown operator {unknown[0]!r}; one of {', '.join(OPERATORS)}")
    if len(ops) != 1:
        raise _Bad(Code.EXC_SCHEMA, node, f"field: {field}",
                   f"a condition needs exactly one operator ({', '.join(OPERATORS)})")
    op = ops[0]
    value = keys[op][1]
    if op == "is" and not isinstance(value, yaml.ScalarNode):
        raise _Bad(Code.EXC_SCHEMA, value, op, "`is` takes one value; for several use `is_one_of`")
    if op == "is_one_of" and not isinstance(value, yaml.SequenceNode):
        raise _Bad(Code.EXC_SCHEMA, value, op, "`is_one_of` takes a list of values")
    values = _texts(value, op)
    if op == "cidr":
        for text, n in values:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise _Bad(Code.EXC_VALUE, n, f"cidr: {text}",
                           f"{text!r} is not a network (10.0.0.0/8, fd00::/8) or an address") from None
    return Condition(field, op, tuple(t for t, _ in values), _at(path, node))


def _rules(node: yaml.Node, rule_ids: frozenset[str] | set[str] | None) -> tuple[str, ...] | None:
    if isinstance(node, yaml.ScalarNode) and node.tag != _NULL and node.value == "all":
        return None
    ids = _texts(node, "rules")
    for rid, n in ids:
        if rule_ids is not None and rid not in rule_ids:
            raise _Bad(Code.EXC_UNKNOWN_RULE, n, f"rules: {rid}", f"no running rule has the id {rid!r}", rid)
    return tuple(dict.fromkeys(rid for rid, _ in ids))


def _entry(node: yaml.Node, path: str, rule_ids: frozenset[str] | set[str] | None,
           fields: frozenset[str] | None) -> RuleException:
    keys = _mapping(node, "an exception entry")
    for key, (k, _) in keys.items():
        if key not in _ENTRY_KEYS:
            raise _Bad(Code.EXC_SCHEMA, k, key, f"unknown key {key!r}; the keys are {', '.join(_ENTRY_KEYS)}")
    for key, why in (("rules", "the rule ids it applies to, or `all`"), ("comment", "why it was granted"),
                     ("when", "its conditions")):
        if key not in keys:
            raise _Bad(Code.EXC_SCHEMA, node, "", f"an exception needs `{key}`: {why}")
    comment = _text(keys["comment"][1], "comment").strip()
    if not comment:
        raise _Bad(Code.EXC_SCHEMA, keys["comment"][1], "comment", "an exception needs a `comment`: why it was granted")
    when = keys["when"][1]
    if not isinstance(when, yaml.SequenceNode) or not when.value:
        raise _Bad(Code.EXC_SCHEMA, when, "when", "`when` must be a non-empty list of conditions")
    expires = _expires(keys["expires"][1]) if "expires" in keys else None
    return RuleException(_rules(keys["rules"][1], rule_ids), tuple(_condition(c, path, fields) for c in when.value),
                         comment, _at(path, node), expires)


def load_exceptions(path: Path, rule_ids: frozenset[str] | set[str] | None = None,
                    fields: frozenset[str] | None = None, now: datetime.datetime | None = None,
                    ) -> tuple[list[RuleException], list[Diagnostic]]:
    """The entries of one exceptions file that apply at `now` (default: the wall clock), and a
    diagnostic per problem. `rule_ids` / `fields`: the running rules' ids and the fields the engine
    can read (None: not checked)."""
    name = str(path)
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Diagnostic(Code.EXC_PARSE, "error", Location(name), None, "", f"cannot read: {exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Location(name, mark.line + 1, mark.column + 1) if mark is not None else Location(name)
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [Diagnostic(Code.EXC_PARSE, "error", loc, None, "", f"invalid YAML: {problem}")]
    if root is None:
        return [], []
    if not isinstance(root, yaml.SequenceNode):
        return [], [Diagnostic(Code.EXC_PARSE, "error", _at(name, root), None, "",
                               "an exceptions file is a list of entries (`- rules: ...`)")]
    entries: list[RuleException] = []
    diags: list[Diagnostic] = []
    for n, node in enumerate(root.value, 1):
        try:
            entry = _entry(node, name, rule_ids, fields)
        except _Bad as bad:
            diags.append(Diagnostic(bad.code, "error", _at(name, bad.node), bad.rule_id, bad.construct,
                                    f"exception #{n}: {bad}"))
            continue
        if entry.expires is not None and entry.expires <= now:
            diags.append(Diagnostic(Code.EXC_EXPIRED, "warning", entry.location, None,
                                    f"expires: {entry.expires.isoformat()}",
                                    f"exception #{n} expired at {entry.expires.isoformat()}; not applied"))
            continue
        entries.append(entry)
    return entries, diags


def load_exception_files(paths: Iterable[Path], rule_ids: frozenset[str] | set[str] | None = None,
                         fields: frozenset[str] | None = None, now: datetime.datetime | None = None,
                         ) -> tuple[list[RuleException], list[Diagnostic]]:
    """Every file's entries, in order, and their diagnostics."""
    entries: list[RuleException] = []
    diags: list[Diagnostic] = []
    for path in paths:
        e, d = load_exceptions(path, rule_ids, fields, now)
        entries += e
        diags += d
    return entries, diags
