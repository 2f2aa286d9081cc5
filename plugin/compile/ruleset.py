"""compile_rules: rules -> one frozen Ruleset (database, anchors, checks, view schema) for run/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import hyperscan as hs
import regex

from shellsieve.compile.cache import FORMAT, CacheEntry, DatabaseCache, patterns_digest
from shellsieve.compile.anchors import ESCAPE_MARKER, Literal, anchor_clauses
from shellsieve.compile.confirm import Check, build_check
from shellsieve.compile.database import Pattern, compile_database, pattern_error
from shellsieve.compile.regex import SENTINEL, FieldPattern, field_patterns, literal_regex, python_flags
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
    # rule index -> its anchor clauses (anchors.anchor_clauses): per clause the trigger ids (in
    # `database`) and the other sets (ids in `secondary`); rules whose clauses are triggers alone are
    # absent, a trigger hit is enough
    raw_clauses: dict[int, RawClauses]
    secondary: hs.Database | None
    marker_id: int
    always: tuple[int, ...]  # rules without an anchor: evaluated on every event
    schema: ViewSchema
    regex_confirm: RegexConfirm
    pattern_count: int
    compile_seconds: float
    database_bytes: int
    accessors: dict[str, Accessor] = field(default_factory=dict)
    cache_status: str = "off"  # off / cold / warm / stale / corrupt (see compile/cache.py)

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


def _closes_value(text: bytes) -> bool:
    """The literal ends with a string's closing quote (an even run of backslashes before it)."""
    if not text.endswith(b'"'):
        return False
    body = text[:-1]
    return (len(body) - len(body.rstrip(b"\\"))) % 2 == 0


def _lit_regex(lit: Literal) -> tuple[bytes, int]:
    # anchors are JSON-escaped UTF-8 text; non-ASCII letters of a caseless one need their case forms
    try:
        body = literal_regex(lit.text.decode("utf-8"), lit.caseless, escape_all=True)
    except UnicodeDecodeError:
        body = b"".join(b"\\x%02x" % b for b in lit.text)
    if _closes_value(lit.text):
        # A value is followed by `,` `}` or `]`, a key by `:`: `"host"` must not fire on every "host" key.
        body += rb"\s*[,\]}]"
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


Resolutions = dict[tuple[bytes, int], tuple[int, str]]  # (expression, flags) -> (flags used, error or "")
RawClauses = tuple[tuple[frozenset[int], tuple[frozenset[int], ...]], ...]  # ((trigger ids, other sets), ...)


def _resolve_pattern(fp: FieldPattern, known: Resolutions) -> str | None:
    """Make `fp` compile on its own: prefilter mode plus a bounded confirm for regexes Hyperscan
    cannot run exactly. Returns an error message when neither works. `known` memoizes outcomes
    (it is kept in the database cache, so a warm start compiles no pattern alone)."""
    key = (fp.expression, fp.flags)
    if key not in known:
        known[key] = _try_resolve(fp)
    flags, err = known[key]
    if err:
        return err
    if flags != fp.flags:
        fp.flags = flags
        fp.confirm = fp.source
    return None


def _try_resolve(fp: FieldPattern) -> tuple[int, str]:
    err = pattern_error(fp.expression, fp.flags)
    if err is None:
        return fp.flags, ""
    try:
        regex.compile(fp.source, python_flags(fp))
    except regex.error as exc:
        return fp.flags, f"{err} (and not a valid regex for the confirm engine: {exc})"
    pre = fp.flags | hs.HS_FLAG_PREFILTER
    pre_err = pattern_error(fp.expression, pre)
    if pre_err is not None:
        return fp.flags, f"{err}; prefilter mode: {pre_err}"
    return pre, ""


Kept = list[tuple[Rule, list[tuple[Predicate, list[FieldPattern]]]]]


def _resolve(kept: Kept, known: Resolutions, only_regex: bool) -> tuple[Kept, list[Diagnostic]]:
    """Drop the rules with a pattern that neither Hyperscan nor its prefilter mode can compile.

    Only user regexes can fail: the other patterns are built here from literals. `only_regex=False`
    is the safety net for a joint compile that fails anyway (e.g. a pattern too large).
    """
    good: Kept = []
    diags: list[Diagnostic] = []
    for rule, fps in kept:
        problem = next(((p, fp, e) for p, lst in fps if not only_regex or p.op is Op.REGEX
                        for fp in lst if (e := _resolve_pattern(fp, known)) is not None), None)
        if problem is None:
            good.append((rule, fps))
            continue
        p, fp, e = problem
        code = Code.REGEX if p.op is Op.REGEX else Code.HYPERSCAN
        diags.append(_diag(rule, code, fp.source, f"{p.field}: {e}"))
    return good, diags


@dataclass
class _Layout:
    """Pattern ids: field patterns first, then raw-line anchors, then the escape marker."""

    patterns: list[Pattern]
    pred_ids: dict[int, frozenset[int]]
    regex_confirm: RegexConfirm
    n_field: int
    raw_rules: dict[int, list[int]]
    raw_clauses: dict[int, RawClauses]
    secondary: list[Pattern]
    always: list[int]
    marker_id: int
    diags: list[Diagnostic]


def _layout(kept: Kept) -> _Layout:
    patterns: list[Pattern] = []
    pred_ids: dict[int, frozenset[int]] = {}
    regex_confirm = RegexConfirm()
    for ri, (rule, fps) in enumerate(kept):
        for pred, lst in fps:
            ids = []
            for fp in lst:
                pid = len(patterns)
                # SINGLEMATCH: a field scan needs which patterns match a value, not where or how often
                patterns.append(Pattern(fp.expression, fp.flags | hs.HS_FLAG_SINGLEMATCH, ri))
                if fp.confirm is not None:
                    regex_confirm.compiled[pid] = regex.compile(fp.confirm, python_flags(fp))
                ids.append(pid)
            pred_ids[id(pred)] = frozenset(ids)
    n_field = len(patterns)

    diags: list[Diagnostic] = []
    literal_ids: dict[Literal, int] = {}
    raw_rules: dict[int, list[int]] = {}
    raw_clauses: dict[int, RawClauses] = {}
    always: list[int] = []

    secondary: list[Pattern] = []
    secondary_ids: dict[Literal, int] = {}

    def pid_of(lit: Literal) -> int:
        pid = literal_ids.get(lit)
        if pid is None:
            pid = literal_ids[lit] = len(patterns)
            expr, flags = _lit_regex(lit)
            patterns.append(Pattern(expr, flags, None))
        return pid

    def secondary_of(lit: Literal) -> int:
        sid = secondary_ids.get(lit)
        if sid is None:
            sid = secondary_ids[lit] = len(secondary)
            expr, flags = _lit_regex(lit)
            secondary.append(Pattern(expr, flags | hs.HS_FLAG_SINGLEMATCH, None))  # scanned per line
        return sid

    for ri, (rule, _) in enumerate(kept):
        # Every query of the rule, `until` included, must see its events: a sequence is a
        # candidate wherever any of its steps could match.
        per_query = [anchor_clauses(q) for q in _queries(rule)]
        if any(c is None for c in per_query):
            always.append(ri)
            diags.append(_diag(rule, Code.NO_ANCHOR, "", Code.NO_ANCHOR.title, "warning"))
            continue
        # A clause's first set (its most selective) triggers the rule from the one block scan; the
        # other sets are looked up, in the secondary database, only on lines a trigger fired on.
        clauses = tuple(dict.fromkeys(
            (frozenset(pid_of(lit) for lit in clause[0]),
             tuple(frozenset(secondary_of(lit) for lit in lits) for lits in clause[1:]))
            for cs in per_query for clause in cs or ()))
        for pid in dict.fromkeys(p for trigger, _ in clauses for p in trigger):
            raw_rules.setdefault(pid, []).append(ri)
        if any(rest for _, rest in clauses):
            raw_clauses[ri] = clauses
    marker_id = len(patterns)
    patterns.append(Pattern(ESCAPE_MARKER, 0, None))
    return _Layout(patterns, pred_ids, regex_confirm, n_field, raw_rules, raw_clauses, secondary, always,
                   marker_id, diags)


def _database(kept: Kept, known: Resolutions, cache: DatabaseCache | None,
              entry: CacheEntry | None) -> tuple[Kept, _Layout, hs.Database, list[Diagnostic]]:
    """The database for `kept`: from the cache when it was built from exactly these patterns."""
    diags: list[Diagnostic] = []
    layout = _layout(kept)
    digest = patterns_digest((p.expression, p.flags) for p in layout.patterns)
    database = cache.database(entry, digest) if cache is not None and entry is not None else None
    if database is not None:
        return kept, layout, database, diags
    try:
        database = compile_database(layout.patterns)
    except hs.error:
        kept, diags = _resolve(kept, known, only_regex=False)
        layout = _layout(kept)
        digest = patterns_digest((p.expression, p.flags) for p in layout.patterns)
        database = compile_database(layout.patterns)
    if cache is not None:
        blob = hs.dumpb(database)
        cache.store(CacheEntry(FORMAT, digest, blob,
                               [(e, f, nf, err) for (e, f), (nf, err) in known.items()]))
    return kept, layout, database, diags


def compile_rules(rules: list[Rule], cache: DatabaseCache | None = None) -> tuple[Ruleset, list[Diagnostic]]:
    """Compile rules into one database; a rule that cannot be run faithfully is skipped with a Diagnostic.

    With a cache, a database built earlier from the same patterns is loaded instead of compiled.
    """
    t0 = time.perf_counter()
    diags: list[Diagnostic] = []
    kept: Kept = []
    for rule in rules:
        try:
            fps = _field_patterns_for(rule)
        except UnsupportedError as exc:
            diags.append(_diag(rule, Code.UNSUPPORTED_CONSTRUCT, exc.construct, exc.message))
            continue
        kept.append((rule, fps))

    entry = cache.load() if cache is not None else None
    known: Resolutions = {(e, f): (nf, err) for e, f, nf, err in entry.resolutions} if entry else {}
    kept, rdiags = _resolve(kept, known, only_regex=True)
    kept, layout, database, cdiags = _database(kept, known, cache, entry)
    diags += rdiags + cdiags + layout.diags
    patterns, regex_confirm = layout.patterns, layout.regex_confirm

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
        return layout.pred_ids[id(pred)]

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
        rules=tuple(compiled), database=database, n_field_patterns=layout.n_field,
        raw_rules={k: tuple(v) for k, v in layout.raw_rules.items()}, raw_clauses=layout.raw_clauses,
        secondary=compile_database(layout.secondary) if layout.secondary else None,
        marker_id=layout.marker_id,
        always=tuple(layout.always), schema=schema, regex_confirm=regex_confirm,
        pattern_count=len(patterns), compile_seconds=seconds, database_bytes=database.size(),
        accessors=acc, cache_status=cache.status if cache is not None else "off",
    ), diags


def describe(rule: Rule) -> str:
    """One line per query of a rule, for `check --verbose` and tests."""
    return "; ".join(render(q) for q in _queries(rule))
