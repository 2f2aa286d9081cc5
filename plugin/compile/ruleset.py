"""compile_rules: rules -> one frozen Ruleset (database, anchors, checks, view schema) for run/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import hyperscan as hs
import regex

from shellsieve.compile.anchors import ESCAPE_MARKER, Literal, anchor_of
from shellsieve.compile.confirm import Check, build_check
from shellsieve.compile.database import Pattern, compile_database, pattern_error
from shellsieve.compile.regex import SENTINEL, FieldPattern, field_patterns, python_flags
from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.errors import UnsupportedError
from shellsieve.events.view import Accessor, ViewSchema
from shellsieve.model.expr import TEXT_OPS, AllOf, AnyOf, Expr, Not, Op, Predicate, fields_of, render
from shellsieve.model.rule import Rule, Sequence

__all__ = ["Ruleset", "CompiledRule", "CompiledSequence", "compile_rules", "REGEX_TIMEOUT_S"]

# Bound on one prefilter confirm by the `regex` engine (back-references, look-around): a crafted
# line must not stall the pipeline. A timeout counts as no match and is counted.
REGEX_TIMEOUT_S = 0.05
# Fields every event view carries: sequence time and what an alert quotes of the first event.
BASE_FIELDS = ("@timestamp", "process.command_line", "process.entity_id", "process.pid")


@dataclass(frozen=True)
class CompiledSequence:
    steps: tuple[Check, ...]
    by: tuple[tuple[Accessor, ...], ...]  # per step
    maxspan: float | None
    until: Check | None
    until_by: tuple[Accessor, ...]


@dataclass(frozen=True)
class CompiledRule:
    index: int
    rule: Rule
    check: Check | None  # single-event rules
    sequence: CompiledSequence | None


class RegexConfirm:
    """Bounded full-engine confirm for patterns Hyperscan runs in prefilter mode."""

    def __init__(self) -> None:
        self.compiled: dict[int, regex.Pattern[str]] = {}
        self.timeouts = 0

    def __call__(self, pattern_id: int, text: str) -> bool:
        pat = self.compiled.get(pattern_id)
        if pat is None:
            return True  # an exact Hyperscan pattern: its hit is the answer
        try:
            return pat.search(text, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            self.timeouts += 1
            return False


@dataclass(frozen=True)
class Ruleset:
    """Everything the hot path needs, built once."""

    rules: tuple[CompiledRule, ...]
    database: hs.Database
    n_field_patterns: int  # ids below this match decoded field values
    raw_rules: dict[int, tuple[int, ...]]  # raw-line anchor id -> rule indices
    marker_id: int
    always: tuple[int, ...]  # rules without an anchor: evaluated on every event
    schema: ViewSchema
    regex_confirm: RegexConfirm
    pattern_count: int
    compile_seconds: float
    database_bytes: int
    accessors: dict[str, Accessor] = field(default_factory=dict)

    def scan_field(self, text: str) -> frozenset[int]:
        """Ids of the field patterns matching `text` (one Hyperscan scan)."""
        hits: list[int] = []
        self.database.scan(SENTINEL + text.encode("utf-8", "surrogatepass"),
                           match_event_handler=_on_field_match, context=hits)
        n = self.n_field_patterns
        return frozenset(i for i in hits if i < n)


def _on_field_match(pid: int, start: int, end: int, flags: int, hits: list[int]) -> None:
    hits.append(pid)


def _predicates(expr: Expr) -> Iterator[Predicate]:
    if isinstance(expr, Predicate):
        yield expr
    elif isinstance(expr, Not):
        yield from _predicates(expr.term)
    elif isinstance(expr, (AllOf, AnyOf)):
        for t in expr.terms:
            yield from _predicates(t)


def _queries(rule: Rule) -> list[Expr]:
    q = rule.query
    if isinstance(q, Sequence):
        return [s.query for s in q.steps] + ([q.until.query] if q.until else [])
    return [q]


def _lit_regex(lit: Literal) -> tuple[bytes, int]:
    body = b"".join(b"\\x%02x" % b for b in lit.text)
    return body, hs.HS_FLAG_CASELESS if lit.caseless else 0


def _diag(rule: Rule, code: Code, construct: str, message: str, severity: str = "error") -> Diagnostic:
    return Diagnostic(code, severity, rule.location, rule.id, construct, message, rule.group)


def _field_patterns_for(rule: Rule) -> list[tuple[Predicate, list[FieldPattern]]]:
    out = []
    for q in _queries(rule):
        for p in _predicates(q):
            if p.op in TEXT_OPS:
                out.append((p, field_patterns(p)))
    return out


def _resolve_pattern(fp: FieldPattern) -> str | None:
    """Make `fp` compile on its own: prefilter mode plus a bounded confirm for regexes Hyperscan
    cannot run exactly. Returns an error message when neither works."""
    err = pattern_error(fp.expression, fp.flags)
    if err is None:
        return None
    try:
        regex.compile(fp.source, python_flags(fp))
    except regex.error as exc:
        return f"{err} (and not a valid regex for the confirm engine: {exc})"
    pre = fp.flags | hs.HS_FLAG_PREFILTER
    pre_err = pattern_error(fp.expression, pre)
    if pre_err is not None:
        return f"{err}; prefilter mode: {pre_err}"
    fp.flags = pre
    fp.confirm = fp.source
    return None


def compile_rules(rules: list[Rule]) -> tuple[Ruleset, list[Diagnostic]]:
    """Compile rules into one database; a rule that cannot be run faithfully is skipped with a Diagnostic."""
    t0 = time.perf_counter()
    diags: list[Diagnostic] = []
    kept: list[tuple[Rule, list[tuple[Predicate, list[FieldPattern]]]]] = []
    for rule in rules:
        try:
            fps = _field_patterns_for(rule)
        except UnsupportedError as exc:
            diags.append(_diag(rule, Code.UNSUPPORTED_CONSTRUCT, exc.construct, exc.message))
            continue
        kept.append((rule, fps))

    # One trial compile of every field pattern: cheap when it passes (the common case). When it
    # fails, the binding does not say which pattern, so each rule's patterns are tried alone.
    trial = [Pattern(fp.expression, fp.flags, None) for _, fps in kept for _, lst in fps for fp in lst]
    try:
        if trial:
            compile_database(trial)
    except hs.error:
        good = []
        for rule, fps in kept:
            problems = [(p, fp, e) for p, lst in fps for fp in lst if (e := _resolve_pattern(fp)) is not None]
            if problems:
                p, fp, e = problems[0]
                code = Code.REGEX if p.op is Op.REGEX else Code.HYPERSCAN
                diags.append(_diag(rule, code, fp.source, f"{p.field}: {e}"))
            else:
                good.append((rule, fps))
        kept = good

    # Ids: field patterns first, then raw-line anchors, then the escape marker.
    patterns: list[Pattern] = []
    pred_ids: dict[int, frozenset[int]] = {}
    regex_confirm = RegexConfirm()
    for ri, (rule, fps) in enumerate(kept):
        for pred, lst in fps:
            ids = []
            for fp in lst:
                pid = len(patterns)
                patterns.append(Pattern(fp.expression, fp.flags, ri))
                if fp.confirm is not None:
                    regex_confirm.compiled[pid] = regex.compile(fp.confirm, python_flags(fp))
                ids.append(pid)
            pred_ids[id(pred)] = frozenset(ids)
    n_field = len(patterns)

    literal_ids: dict[Literal, int] = {}
    raw_rules: dict[int, list[int]] = {}
    always: list[int] = []
    for ri, (rule, _) in enumerate(kept):
        # Every query of the rule, `until` included, must see its events: a sequence is a
        # candidate wherever any of its steps could match.
        anchors = [anchor_of(q) for q in _queries(rule)]
        if any(a is None for a in anchors):
            always.append(ri)
            diags.append(_diag(rule, Code.NO_ANCHOR, "", Code.NO_ANCHOR.title, "warning"))
            continue
        for lit in dict.fromkeys(lit for a in anchors for lit in a or ()):
            pid = literal_ids.get(lit)
            if pid is None:
                pid = literal_ids[lit] = len(patterns)
                expr, flags = _lit_regex(lit)
                patterns.append(Pattern(expr, flags, None))
            raw_rules.setdefault(pid, []).append(ri)
    marker_id = len(patterns)
    patterns.append(Pattern(ESCAPE_MARKER, 0, None))
    database = compile_database(patterns)

    fields: set[str] = set(BASE_FIELDS)
    for rule, _ in kept:
        for q in _queries(rule):
            fields |= fields_of(q)
        if isinstance(rule.query, Sequence):
            for s in rule.query.steps:
                fields.update(s.by)
            if rule.query.until:
                fields.update(rule.query.until.by)
    schema = ViewSchema(fields)
    acc = schema.accessors

    def text_ids(pred: Predicate) -> frozenset[int]:
        return pred_ids[id(pred)]

    compiled: list[CompiledRule] = []
    for ri, (rule, _) in enumerate(kept):
        build: Callable[[Expr], Check] = lambda e: build_check(e, acc, text_ids, regex_confirm)  # noqa: E731
        q = rule.query
        if isinstance(q, Sequence):
            seq = CompiledSequence(
                steps=tuple(build(s.query) for s in q.steps),
                by=tuple(tuple(acc[f] for f in s.by) for s in q.steps),
                maxspan=q.maxspan,
                until=build(q.until.query) if q.until else None,
                until_by=tuple(acc[f] for f in q.until.by) if q.until else (),
            )
            compiled.append(CompiledRule(ri, rule, None, seq))
        else:
            compiled.append(CompiledRule(ri, rule, build(q), None))

    seconds = time.perf_counter() - t0
    return Ruleset(
        rules=tuple(compiled), database=database, n_field_patterns=n_field,
        raw_rules={k: tuple(v) for k, v in raw_rules.items()}, marker_id=marker_id,
        always=tuple(always), schema=schema, regex_confirm=regex_confirm,
        pattern_count=len(patterns), compile_seconds=seconds, database_bytes=len(hs.dumpb(database)),
        accessors=acc,
    ), diags


def describe(rule: Rule) -> str:
    """One line per query of a rule, for `check --verbose` and tests."""
    return "; ".join(render(q) for q in _queries(rule))
