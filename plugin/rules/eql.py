"""EQL text -> model, parsed by Elastic's `eql` package in its Elasticsearch syntax."""

from __future__ import annotations

import ipaddress
from contextlib import ExitStack
from typing import Any
import eql
from eql import ast
from eql.errors import EqlSyntaxError
from eql.parser import LarkToEQL, lark_parser
from eql.types import NodeInfo
from eql.utils import load_extensions
from lark.exceptions import UnexpectedInput

from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import Expr, Not, Op, Predicate, all_of, any_of
from shellsieve.model.rule import Sequence, Step

__all__ = ["parse_eql"]

MAX_RUNS = 100  # `[...] with runs=N`: a bound on the steps one sequence rule may have
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _CaseAwareWalker(LarkToEQL):  # type: ignore[misc]  # eql is untyped: its base class is Any
    """eql folds `:`, `like`, `like~` into one `wildcard` call and `in~` into `in`, losing the case
    rule each one has in Elasticsearch. This walker keeps it in the function name it emits."""

    def string_predicate(self, node: Any) -> Any:
        info = super().string_predicate(node)
        pred = str(node["STRING_PREDICATE"])
        info.node = ast.FunctionCall(f"ss:{pred}", list(info.node.arguments))
        return info

    def subquery_by(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        # eql copies a `with runs=N` step N times right after this returns: bound N first, or
        # runs=62222222222222 is a MemoryError and runs=10**8 some gigabytes.
        info, join_values, runs = super().subquery_by(node, *args, **kwargs)
        if runs > MAX_RUNS:
            raise UnsupportedError(f"with runs={runs}", f"a step repeated more than {MAX_RUNS} times")
        return info, join_values, runs

    def in_set(self, node: Any) -> Any:
        info = super().in_set(node)
        if node.get("IN") == "in~":
            info.node = ast.FunctionCall("ss:in~", [info.node.expression, *info.node.container])
        return info


def _walk(text: str) -> Any:
    """What eql's `parse_query` does, with eql's public parser and our walker: parse the text with
    `lark_parser` at `piped_query`, then convert the tree with `_CaseAwareWalker` (no optimiser pass:
    keep the tree as written, `not x == y` is not rewritten into `x != y`)."""
    if not text.strip():
        raise EqlSyntaxError("No text specified", 0, 0, text)
    if not text.endswith("\n"):
        text += "\n"
    load_extensions(force=False)
    # The walker reads the parser options (elasticsearch syntax, runs, ...) when it is built.
    walker = _CaseAwareWalker(text)
    try:
        tree = lark_parser.parse(text, start="piped_query")
    except UnexpectedInput as e:  # the syntax errors, which carry line and column
        width = len(e.token) if hasattr(e, "token") else 1
        raise EqlSyntaxError("Invalid syntax", line=e.line - 1, column=e.column - 1, width=width,
                             source="\n".join(walker.lines[e.line - 2:e.line])) from None
    node = walker.visit(tree)
    return node.node if isinstance(node, NodeInfo) else node


def _parse(text: str) -> Any:
    with ExitStack() as stack:
        stack.enter_context(eql.parser.elasticsearch_syntax)
        stack.enter_context(eql.parser.ignore_missing_functions)
        # `[...] with runs=N` is Elasticsearch's shorthand for N copies of the step; eql expands it.
        stack.enter_context(eql.parser.allow_runs)
        # `sample` parses, so that it is reported as the construct it is, not as a syntax error.
        stack.enter_context(eql.parser.allow_sample)
        try:
            return _walk(text)
        except eql.EqlError:
            raise
        except (AttributeError, IndexError, OverflowError, RecursionError) as exc:
            # eql's own error paths can fail: a sign on a string (`x < -"a"`) reaches `KvTree.source`,
            # which does not exist; a sequence whose steps differ in their number of `by` fields
            # indexes past them; `with runs=<40 digits>` overflows a list size. Queries eql refuses.
            raise UnsupportedError(text.strip()[:80],
                                   f"the eql parser failed on this query ({type(exc).__name__}: {exc})") from None


def _field(node: Any) -> str:
    if not isinstance(node, ast.Field):
        raise UnsupportedError(type(node).__name__, f"expected a field, got {node}")
    return ".".join(str(p) for p in [node.base, *node.path])


def _literal(node: Any) -> Any:
    if isinstance(node, (ast.String, ast.Number, ast.Boolean)):
        return node.value
    raise UnsupportedError(str(node), f"expected a literal, got {type(node).__name__}")


def _wildcard_value(text: str) -> str:
    """EQL has no escape inside wildcard patterns: a backslash is literal, so escape it for the model."""
    return text.replace("\\", "\\\\")


def _string_match(field: str, values: list[str], case_sensitive: bool) -> Expr:
    """`field : v` / `like`: values with `*` or `?` are wildcards, the rest whole-value equality."""
    plain = [v for v in values if "*" not in v and "?" not in v]
    wild = [_wildcard_value(v) for v in values if "*" in v or "?" in v]
    terms: list[Expr] = []
    if plain:
        terms.append(Predicate(field, Op.EQ, tuple(plain), case_sensitive))
    if wild:
        terms.append(Predicate(field, Op.WILDCARD, tuple(wild), case_sensitive))
    return any_of(terms)


_CMP = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE}
_LEN_CMP = {"<": Op.LENGTH_LT, "<=": Op.LENGTH_LE, ">": Op.LENGTH_GT, ">=": Op.LENGTH_GE, "==": Op.LENGTH_EQ}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_STRING_FUNCS = {"startswith": Op.STARTSWITH, "endswith": Op.ENDSWITH, "stringcontains": Op.CONTAINS}


def _comparison(node: Any) -> Expr:
    left, op, right = node.left, node.comparator, node.right
    if not isinstance(left, (ast.Field, ast.FunctionCall)):
        left, right, op = right, left, _FLIP[op]
    if isinstance(left, ast.FunctionCall) and left.name.lower() == "length":
        target = _field(left.arguments[0])
        if op == "!=":
            return Not(Predicate(target, Op.LENGTH_EQ, (_literal(right),)))
        return Predicate(target, _LEN_CMP[op], (_literal(right),))
    field = _field(left)
    if isinstance(right, ast.Field):
        if op not in ("==", "!="):
            raise UnsupportedError(str(node), "field-to-field ordering comparison")
        pred = Predicate(field, Op.FIELDREF, (_field(right),))
        return pred if op == "==" else Not(pred)
    value = _literal(right)
    if op in ("==", "!="):
        # `==` is case-sensitive in Elasticsearch EQL; `!=` is its negation (on arrays: no element equals).
        pred = Predicate(field, Op.EQ, (value,), case_sensitive=True)
        return pred if op == "==" else Not(pred)
    return Predicate(field, _CMP[op], (value,))


def _function(node: Any) -> Expr:
    name = node.name
    args = node.arguments
    if name.startswith("ss:"):
        pred = name[3:]
        if pred == "in~":
            return Predicate(_field(args[0]), Op.EQ, tuple(_literal(a) for a in args[1:]), False)
        values = [_literal(a) for a in args[1:]]
        if pred in (":", "like~"):
            return _string_match(_field(args[0]), values, case_sensitive=False)
        if pred == "like":
            return _string_match(_field(args[0]), values, case_sensitive=True)
        # regex / regex~: Lucene regular expressions over the whole value.
        return any_of([Predicate(_field(args[0]), Op.REGEX, (_lucene_regex(v),), pred == "regex")
                       for v in values])
    lname = name.lower().rstrip("~")
    if not args:  # eql parses a call of an unknown arity (ignore_missing_functions): `cidrmatch()`
        raise UnsupportedError(f"{name}()", f"{name}() needs a field as its first argument")
    if lname in _STRING_FUNCS and any(isinstance(a, ast.Field) for a in args[1:]):
        raise UnsupportedError(f"{name}({_field(args[0])}, <field>)",
                               f"{name}() with a field as its second argument (a comparison of two fields) "
                               "is not implemented")
    if lname in _STRING_FUNCS:
        return Predicate(_field(args[0]), _STRING_FUNCS[lname], tuple(_literal(a) for a in args[1:]),
                         case_sensitive=not name.endswith("~"))
    if lname == "cidrmatch":
        nets = tuple(_literal(a) for a in args[1:])
        for n in nets:
            try:
                ipaddress.ip_network(str(n), strict=False)
            except ValueError:  # checked here so that compile, which builds the networks, cannot fail
                raise UnsupportedError(str(n), f"cidrmatch(): {str(n)!r} is neither an address nor a network") from None
        return Predicate(_field(args[0]), Op.CIDR, nets)
    raise UnsupportedError(f"{name}()", f"EQL function {name}() is not implemented")


_LUCENE_OPERATORS = set("#@&~<>")


def _lucene_regex(pattern: str) -> str:
    """Lucene regex (whole value; `.` matches any char) -> PCRE search pattern, or refuse.

    Lucene has no anchors: outside a character class `^` and `$` are plain characters, so they are
    escaped; `[^...]` is a negated class in both. `"..."` quotes a literal string in Lucene only.
    """
    out: list[str] = []
    escaped = in_class = False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            # `]` right after `[` or `[^` is a literal member, as in PCRE
            in_class = not (ch == "]" and pattern[i - 1] != "[" and pattern[i - 2 : i] != "[^")
        elif ch == "[":
            in_class = True
        elif ch in _LUCENE_OPERATORS or ch == '"':
            raise UnsupportedError(pattern, f"Lucene regex operator {ch!r} has no PCRE equivalent here")
        elif ch in "^$":
            out.append("\\")
        out.append(ch)
    return rf"(?s)\A(?:{''.join(out)})\z"


def _expr(node: Any) -> Expr:
    if isinstance(node, ast.And):
        return all_of([_expr(t) for t in node.terms])
    if isinstance(node, ast.Or):
        return any_of([_expr(t) for t in node.terms])
    if isinstance(node, ast.Not):
        return Not(_expr(node.term))
    if isinstance(node, ast.Comparison):
        return _comparison(node)
    if isinstance(node, ast.InSet):
        values = tuple(_literal(c) for c in node.container)
        return Predicate(_field(node.expression), Op.EQ, values, case_sensitive=True)
    if isinstance(node, ast.IsNotNull):
        return Predicate(_field(node.expr), Op.EXISTS)
    if isinstance(node, ast.IsNull):
        return Not(Predicate(_field(node.expr), Op.EXISTS))
    if isinstance(node, ast.FunctionCall):
        return _function(node)
    if isinstance(node, ast.Boolean):
        raise UnsupportedError(str(node), "constant boolean condition")
    raise UnsupportedError(type(node).__name__, f"EQL construct {type(node).__name__} is not implemented")


def _event_query(node: Any) -> Expr:
    body = _expr(node.query) if not isinstance(node.query, ast.Boolean) or not node.query.value else None
    if node.event_type in ("any", None):
        if body is None:
            raise UnsupportedError("any where true", "query matches every event")
        return body
    category = Predicate("event.category", Op.EQ, (node.event_type,), case_sensitive=True)
    return category if body is None else all_of([category, body])


def _step(sub: Any) -> Step:
    if sub.data.get("is_negated"):
        raise UnsupportedError("![...]", "missing-event steps are not implemented")
    return Step(_event_query(sub.query), tuple(_field(f) for f in sub.join_values))


def parse_eql(text: str) -> Expr | Sequence:
    """EQL query -> expression or sequence; EqlError and UnsupportedError propagate to the loader."""
    tree = _parse(text)
    if tree.pipes:
        raise UnsupportedError("| " + type(tree.pipes[0]).__name__, "EQL pipes are not implemented")
    first = tree.first
    if isinstance(first, ast.EventQuery):
        return _event_query(first)
    if isinstance(first, ast.Sequence):
        span = None
        if first.max_span is not None:
            span = first.max_span.quantity * _UNITS[str(first.max_span.unit.value if hasattr(
                first.max_span.unit, "value") else first.max_span.unit)]
        until = _step(first.close) if first.close is not None else None
        return Sequence(tuple(_step(q) for q in first.queries), span, until)
    if isinstance(first, ast.Sample):
        raise UnsupportedError("sample by", "EQL `sample` has no time bound of its own: what it matches depends "
                               "on the search window of each rule run, which a stream does not have")
    raise UnsupportedError(type(first).__name__.lower(), f"EQL {type(first).__name__} queries are not implemented")
