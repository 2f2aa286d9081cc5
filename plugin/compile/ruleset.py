"""compile_rules: rules -> one frozen Ruleset (database, anchors, checks, view schema) for run/."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

import hyperscan as hs
import regex

from shellsieve.compile.cache import FORMAT, CacheEntry, DatabaseCache, patterns_digest
from shellsieve.compile.lazy_database import LazyDatabase
from shellsieve.compile.anchors import Clause, anchor_clauses
from shellsieve.compile.confirm import Check, build_check
from shellsieve.compile.cost import cost_error
from shellsieve.compile.database import Pattern, compile_database, pattern_error
from shellsieve.compile.lines import Keyed, LineLayout, Need, joins, line_layout, single_match
from shellsieve.compile.regex import SENTINEL, FieldPattern, field_patterns, python_flags
from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.errors import UnsupportedError
from shellsieve.events.view import Accessor, ViewSchema, field_error
from shellsieve.model.expr import TEXT_OPS, Expr, Op, Predicate, fields_of, predicates, render
from shellsieve.compile.meta import resolve_meta, split_meta
from shellsieve.model.correlation import Correlation, Filter
from shellsieve.model.exceptions import RuleException
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
    # Line pattern ids per query (the steps, then `until`): a step whose anchors did not fire in a
    # line cannot hold there, so its check is skipped. None: the rule has no anchors.
    query_ids: tuple[frozenset[int], ...] | None = None


@dataclass(frozen=True)
class CompiledRule:
    index: int
    rule: Rule
    check: Check | None  # single-event rules
    sequence: CompiledSequence | None


class RegexConfirm:
    """Bounded full-engine confirm for patterns Hyperscan runs in prefilter mode. Each regex is
    compiled when first needed: most never are, and a warm start then compiles none."""

    def __init__(self) -> None:
        self.sources: dict[int, tuple[str, int]] = {}  # pattern id -> (regex, `regex` flags)
        self.compiled: dict[int, regex.Pattern[str]] = {}
        self.timeouts = 0

    def __getstate__(self) -> dict[str, object]:
        return {"sources": self.sources, "compiled": {}, "timeouts": 0}  # kept in the cache: sources only

    def __call__(self, pattern_id: int, text: str) -> bool:
        pat = self.compiled.get(pattern_id)
        if pat is None:
            source = self.sources.get(pattern_id)
            if source is None:
                return True  # an exact Hyperscan pattern: its hit is the answer
            pat = self.compiled[pattern_id] = regex.compile(*source)  # checked by _try_resolve
        try:
            return pat.search(text, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            self.timeouts += 1
            return False


@dataclass(frozen=True)
class Ruleset:
    """Everything the hot path needs, built once."""

    rules: tuple[CompiledRule, ...]
    database: hs.Database  # the line database: every input byte goes through it (compile/lines.py)
    field_database: hs.Database | None  # every text pattern of every rule, matched against decoded values
    raw_rules: dict[int, tuple[int, ...]]  # line pattern id -> rule indices: a hit makes them candidates
    # line pattern id -> (sequence rule, query index >= 1) for the anchors of later steps and `until`:
    # a hit makes the rule a candidate only while that query is live (run/match.py)
    late_rules: dict[int, tuple[tuple[int, int], ...]]
    keyed: dict[int, Keyed]  # line pattern id -> the key a hit must be under (run/keys.py)
    requires: dict[int, tuple[tuple[Need, ...], ...]]  # a join's id -> its keyed sets: each must pass (run/keys.py)
    marker_id: int  # the escape marker's id: a line where it fires is a candidate for every rule
    reserved_id: int  # the `shellsieve` key's id: a line where it fires is decoded even without a rule
    format_ids: frozenset[int]  # ids of ECS_MARKERS: a block where one fires is not routed as ECS
    envelope_ids: dict[int, str]  # ids of envelope keys (events/envelope.py COMPILED_FIELDS) -> field
    always: tuple[int, ...]  # rules without an anchor: evaluated on every event
    schema: ViewSchema
    regex_confirm: RegexConfirm
    pattern_count: int
    compile_seconds: float
    database_bytes: int
    accessors: dict[str, Accessor] = field(default_factory=dict)
    cache_status: str = "off"  # off / cold / warm / stale / corrupt / untrusted (see compile/cache.py)
    # The line database again with HS_FLAG_SINGLEMATCH: scanned one line at a time when a block's
    # hits pass their bound (run/match.py), so that one event makes at most one callback per pattern.
    # Compiled (or loaded from the cache) when first scanned.
    single_database: LazyDatabase | None = None
    # `database` is scanned a line at a time, its patterns but the keyed ones reporting once per line
    # (compile/lines.py PER_LINE_JOINS)
    per_line: bool = False
    # id() of a text predicate of `rules` -> its field pattern ids: what `explain` evaluates one
    # condition with, exactly as the compiled check does (the predicates live as long as the rules)
    text_ids: dict[int, frozenset[int]] = field(default_factory=dict)
    # Sigma meta rules (compile/meta.py): correlations over resolved ids in chain order (run/meta.py),
    # and filters as exceptions (run/exceptions.py); `meta_rules`: both as rules, for `check`
    correlations: tuple[Rule, ...] = ()
    filters: tuple[RuleException, ...] = ()
    meta_rules: tuple[Rule, ...] = ()

    def scan_field(self, text: str) -> frozenset[int]:
        """Ids of the field patterns matching `text` (one Hyperscan scan)."""
        hits: list[int] = []
        if self.field_database is None:  # rules of equality tests alone
            return frozenset()
        self.field_database.scan(SENTINEL + text.encode("utf-8", "surrogatepass"),
                                 match_event_handler=_on_field_match, context=hits)  # type: ignore[arg-type]  # hyperscan's stub types the context as object; the handler gets `hits`
        return frozenset(hits)


def _on_field_match(pid: int, start: int, end: int, flags: int, hits: list[int]) -> None:
    hits.append(pid)


def _queries(rule: Rule) -> list[Expr]:
    q = rule.query
    if isinstance(q, Sequence):
        return [s.query for s in q.steps] + ([q.until.query] if q.until else [])
    if isinstance(q, (Correlation, Filter)):
        return []  # run on other rules' hits (compile/meta.py): no query of their own on events
    return [q]


def _diag(rule: Rule, code: Code, construct: str, message: str, severity: str = "error") -> Diagnostic:
    return Diagnostic(code, severity, rule.location, rule.id, construct, message, rule.group)


def _costly(rule: Rule) -> Diagnostic | None:
    """The first pattern of `rule` too costly to compile (compile/cost.py), checked before Hyperscan sees it."""
    for q in _queries(rule):
        for p in predicates(q):
            if p.op in TEXT_OPS:
                for v in p.values:
                    if (err := cost_error(p.op, v)) is not None:
                        return _diag(rule, Code.COSTLY, str(v)[:80], f"{p.field}: {err}")
    return None


def _text_predicates(rule: Rule) -> Iterator[Predicate]:
    """The rule's text predicates in a fixed order: what the field patterns are derived from, and
    how the cached layout names them (an id() does not outlive the process)."""
    for q in _queries(rule):
        for p in predicates(q):
            if p.op in TEXT_OPS:
                yield p


def _field_patterns_for(rule: Rule) -> list[tuple[Predicate, list[FieldPattern]]]:
    q = rule.query
    by = [f for s in (*q.steps, *([q.until] if q.until else [])) for f in s.by] if isinstance(q, Sequence) else []
    for f in sorted(set(by).union(*(fields_of(q) for q in _queries(rule)))):
        if (err := field_error(f)) is not None:
            raise UnsupportedError(f, err)
    return [(p, field_patterns(p)) for p in _text_predicates(rule)]


Resolutions = dict[tuple[bytes, int], tuple[int, str]]  # (expression, flags) -> (flags used, error or "")


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
    """The two databases' patterns: field patterns (ids are per-predicate sets) and the line layout."""

    fields: list[Pattern]
    pred_ids: dict[int, frozenset[int]]
    regex_confirm: RegexConfirm
    lines: LineLayout
    always: list[int]
    diags: list[Diagnostic]
    query_ids: dict[int, tuple[frozenset[int], ...]]  # sequence rule -> line pattern ids per query

    @cached_property
    def digest(self) -> bytes:
        both = self.fields + [Pattern(b"\n-- line database --\n", 0, None)] + self.lines.patterns
        return patterns_digest((p.expression, p.flags) for p in both)


def _layout(kept: Kept) -> _Layout:
    fields: list[Pattern] = []
    pred_ids: dict[int, frozenset[int]] = {}
    regex_confirm = RegexConfirm()
    # A pattern many rules share (`?*`, "any non-empty value", is in hundreds of Elastic rules) gets
    # one id: each field scan then reports it once, not once per rule.
    shared: dict[tuple[bytes, int, str | None], int] = {}
    for ri, (_rule, fps) in enumerate(kept):
        for pred, lst in fps:
            ids = []
            for fp in lst:
                key = (fp.expression, fp.flags, fp.confirm)
                pid = shared.get(key, len(fields))
                if pid == len(fields):
                    shared[key] = pid
                    # SINGLEMATCH: a field scan needs which patterns match a value, not where or how often
                    fields.append(Pattern(fp.expression, fp.flags | hs.HS_FLAG_SINGLEMATCH, ri))
                    if fp.confirm is not None:
                        regex_confirm.sources[pid] = (fp.confirm, python_flags(fp))
                ids.append(pid)
            pred_ids[id(pred)] = frozenset(ids)

    diags: list[Diagnostic] = []
    always: list[int] = []
    clauses: dict[int, list[Clause]] = {}
    queries: dict[int, list[list[Clause]]] = {}
    for ri, (rule, _) in enumerate(kept):
        # Every query of the rule, `until` included, must see its events: a sequence is a
        # candidate wherever any of its steps could match.
        per_query = [anchor_clauses(q, joins=joins) for q in _queries(rule)]
        if any(c is None for c in per_query):
            always.append(ri)
            diags.append(_diag(rule, Code.NO_ANCHOR, "", Code.NO_ANCHOR.title, "warning"))
            continue
        clauses[ri] = list(dict.fromkeys(c for cs in per_query for c in cs or ()))
        if isinstance(rule.query, Sequence):
            queries[ri] = [cs or [] for cs in per_query]
    lines = line_layout(clauses)
    query_ids = {ri: tuple(frozenset(pid for c in cs for pid in lines.clause_ids[c]) for cs in per_query)
                 for ri, per_query in queries.items()}
    return _Layout(fields, pred_ids, regex_confirm, lines, always, diags, query_ids)


Databases = tuple[hs.Database | None, hs.Database]  # the field and line databases


def _database(kept: Kept, known: Resolutions, cache: DatabaseCache | None,
              entry: CacheEntry | None) -> tuple[Kept, _Layout, Databases, list[Diagnostic], bool]:
    """The field and line databases for `kept`: from the cache when built from exactly these
    patterns; and whether a new entry is to be stored (they were not this entry's)."""
    diags: list[Diagnostic] = []
    layout = _layout(kept)
    databases = cache.databases(entry, layout.digest) if cache is not None and entry is not None else None
    if databases is not None:
        return kept, layout, databases, diags, False
    databases = cache.by_patterns(layout.digest) if cache is not None else None
    if databases is not None:
        return kept, layout, databases, diags, True
    try:
        field_db = compile_database(layout.fields) if layout.fields else None
    except hs.error:
        kept, diags = _resolve(kept, known, only_regex=False)
        layout = _layout(kept)
        field_db = compile_database(layout.fields) if layout.fields else None
    return kept, layout, (field_db, compile_database(layout.lines.patterns)), diags, True


@dataclass
class _Saved:
    """What `_derive` makes of a rule model, kept in the cache entry (CacheEntry.layout) with it."""

    kept: list[int]  # positions in the rules given of the rules compiled
    layout: _Layout  # its pred_ids left empty: they are keyed by id(), see text_ids
    text_ids: list[frozenset[int]]  # field pattern ids per `_text_predicates` of the kept rules, in order
    diags: list[Diagnostic]  # every diagnostic of the compile


def _save(rules: list[Rule], kept: list[Rule], layout: _Layout, diags: list[Diagnostic]) -> bytes:
    position = {id(r): i for i, r in enumerate(rules)}
    text_ids = [layout.pred_ids[id(p)] for r in kept for p in _text_predicates(r)]
    # clause_ids only served to build query_ids: not kept
    bare = replace(layout, pred_ids={}, lines=replace(layout.lines, clause_ids={}))
    return pickle.dumps(_Saved([position[id(r)] for r in kept], bare, text_ids, diags),
                        protocol=pickle.HIGHEST_PROTOCOL)


def _restore(blob: bytes, rules: list[Rule]) -> tuple[list[Rule], _Layout, list[Diagnostic]] | None:
    """The kept rules, layout and diagnostics `_save` kept for these rules, or None if they do not load."""
    try:
        saved = pickle.loads(blob)
        kept = [rules[i] for i in saved.kept]
    except Exception:  # noqa: BLE001 - any failure means: derive them again
        return None
    preds = [p for r in kept for p in _text_predicates(r)]
    if not isinstance(saved, _Saved) or len(preds) != len(saved.text_ids):
        return None
    saved.layout.pred_ids = {id(p): ids for p, ids in zip(preds, saved.text_ids)}
    return kept, saved.layout, saved.diags


def _reuse(rules: list[Rule], cache: DatabaseCache | None, entry: CacheEntry | None
           ) -> tuple[list[Rule], _Layout, Databases, list[Diagnostic]] | None:
    """Warm: the layout kept in the entry, when `rules` are its model (the caller sets cache.model
    to the model `rules` were decoded from or encoded into), with the databases it was compiled to."""
    if cache is None or entry is None or not entry.layout or not cache.model or cache.model != entry.model:
        return None
    restored = _restore(entry.layout, rules)
    if restored is None:
        return None
    kept, layout, diags = restored
    databases = cache.databases(entry, layout.digest)
    return (kept, layout, databases, diags) if databases is not None else None


def _derive(rules: list[Rule], cache: DatabaseCache | None, entry: CacheEntry | None
            ) -> tuple[list[Rule], _Layout, Databases, list[Diagnostic]]:
    """The rules that can be compiled, their pattern layout and databases (compiled, or loaded
    when built from the same patterns), and the diagnostics; a new entry is stored."""
    diags: list[Diagnostic] = []
    kept: Kept = []
    for rule in rules:
        costly = _costly(rule)
        if costly is not None:
            diags.append(costly)
            continue
        try:
            fps = _field_patterns_for(rule)
        except UnsupportedError as exc:
            diags.append(_diag(rule, Code.UNSUPPORTED_CONSTRUCT, exc.construct, exc.message))
            continue
        kept.append((rule, fps))

    known: Resolutions = {(e, f): (nf, err) for e, f, nf, err in entry.resolutions} if entry else {}
    kept, rdiags = _resolve(kept, known, only_regex=True)
    kept, layout, (field_db, line_db), cdiags, new = _database(kept, known, cache, entry)
    diags += rdiags + cdiags + layout.diags + _empty_matches(kept, layout, field_db)
    kept_rules = [r for r, _ in kept]
    if new and cache is not None:
        saved = _save(rules, kept_rules, layout, diags) if cache.model else b""
        cache.store(CacheEntry(FORMAT, layout.digest, hs.dumpb(field_db) if field_db else b"", hs.dumpb(line_db),
                               [(e, f, nf, err) for (e, f), (nf, err) in known.items()], layout=saved))
    return kept_rules, layout, (field_db, line_db), diags


def _empty_matches(kept: Kept, layout: _Layout, field_db: hs.Database | None) -> list[Diagnostic]:
    """A warning per predicate with a pattern that matches the empty value (`a*`, `.*`, `x?`): it holds on
    any value, so the rule alerts on every event with the field. One field scan of the empty value."""
    hits: list[int] = []
    if field_db is not None:
        field_db.scan(SENTINEL, match_event_handler=_on_field_match, context=hits)  # type: ignore[arg-type]  # hyperscan's stub types the context as object; the handler gets `hits`
    empty = {pid for pid in hits if layout.regex_confirm(pid, "")}  # a prefilter hit: its regex decides
    if not empty:
        return []
    out: list[Diagnostic] = []
    for rule, fps in kept:
        for pred, _ in fps:
            if not empty.isdisjoint(layout.pred_ids[id(pred)]):
                out.append(_diag(rule, Code.MATCHES_EMPTY, render(pred)[:200],
                                 f"{pred.field}: {Code.MATCHES_EMPTY.title}", "warning"))
    return out


def _split_candidates(layout: _Layout) -> tuple[dict[int, tuple[int, ...]],
                                                dict[int, tuple[tuple[int, int], ...]]]:
    """Line pattern id -> the rules its hit always makes candidates (single-event rules, first steps),
    and -> the (sequence, later query) pairs it makes candidates only while a partial waits for them.

    Linux sequences often end on a step any exec matches (`process where event.type == "start"`):
    its anchors fire on every line, yet the step can only matter once an earlier step has held.
    """
    raw: dict[int, list[int]] = {}
    late: dict[int, list[tuple[int, int]]] = {}
    for pid, rule_indices in layout.lines.rules.items():
        for ri in rule_indices:
            per_query = layout.query_ids.get(ri)
            if per_query is None or pid in per_query[0]:
                raw.setdefault(pid, []).append(ri)
                continue
            late.setdefault(pid, []).extend((ri, k) for k, ids in enumerate(per_query) if pid in ids)
    return {k: tuple(v) for k, v in raw.items()}, {k: tuple(v) for k, v in late.items()}


def compile_rules(rules: list[Rule], cache: DatabaseCache | None = None) -> tuple[Ruleset, list[Diagnostic]]:
    """Compile rules into one database; a rule that cannot be run faithfully is skipped with a Diagnostic.

    With a cache, a database built earlier from the same patterns is loaded instead of compiled.
    """
    t0 = time.perf_counter()
    rules, meta = split_meta(rules)
    entry = cache.load() if cache is not None else None
    reused = _reuse(rules, cache, entry)
    kept, layout, (field_db, line_db), diags = reused if reused is not None else _derive(rules, cache, entry)
    # over the rules that run: a correlation over a skipped rule is skipped too, saying why
    correlations, filters, mdiags = resolve_meta(meta, kept)
    diags = diags + mdiags
    regex_confirm = layout.regex_confirm
    single_db = LazyDatabase(single_match(layout.lines.patterns), layout.digest, cache)

    fields: set[str] = set(BASE_FIELDS)
    for rule in kept:
        for expr in _queries(rule):
            fields |= fields_of(expr)
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
    for ri, rule in enumerate(kept):
        build: Callable[[Expr], Check] = lambda e: build_check(e, acc, text_ids, regex_confirm)  # noqa: E731  a lambda typed by its annotation
        top = rule.query
        if isinstance(top, Sequence):
            seq = CompiledSequence(
                steps=tuple(build(s.query) for s in top.steps),
                by=tuple(tuple(acc[f] for f in s.by) for s in top.steps),
                maxspan=top.maxspan,
                until=build(top.until.query) if top.until else None,
                until_by=tuple(acc[f] for f in top.until.by) if top.until else (),
                query_ids=layout.query_ids.get(ri),
            )
            compiled.append(CompiledRule(ri, rule, None, seq))
        else:
            assert not isinstance(top, (Correlation, Filter))  # set aside by split_meta
            compiled.append(CompiledRule(ri, rule, build(top), None))

    raw_rules, late_rules = _split_candidates(layout)
    seconds = time.perf_counter() - t0
    return Ruleset(
        rules=tuple(compiled), database=line_db, field_database=field_db,
        raw_rules=raw_rules, late_rules=late_rules, keyed=layout.lines.keyed, requires=layout.lines.requires,
        marker_id=layout.lines.marker_id, reserved_id=layout.lines.reserved_id,
        format_ids=layout.lines.format_ids, envelope_ids=layout.lines.envelope_ids, per_line=layout.lines.per_line,
        always=tuple(layout.always), schema=schema, regex_confirm=regex_confirm,
        pattern_count=len(layout.fields) + len(layout.lines.patterns), compile_seconds=seconds,
        database_bytes=(field_db.size() if field_db else 0) + line_db.size(),
        accessors=acc, cache_status=cache.status if cache is not None else "off", single_database=single_db,
        text_ids=layout.pred_ids, correlations=tuple(correlations),
        filters=tuple(e for _, e in filters), meta_rules=(*correlations, *(r for r, _ in filters)),
    ), diags


def describe(rule: Rule) -> str:
    """One line per query of a rule, for `check --verbose` and tests."""
    return "; ".join(render(q) for q in _queries(rule))
