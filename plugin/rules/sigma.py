"""Sigma YAML -> model. pySigma parses each rule, applies its modifiers and resolves its condition;
this module maps pySigma's value types and condition tree onto Predicate / AllOf / AnyOf / Not."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionIdentifier,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import SigmaCorrelationRule
from sigma.filters import SigmaFilter
from sigma.exceptions import SigmaConditionError, SigmaError
from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import PythonRegexEngine
from sigma.rule import SigmaRule, SigmaRuleBase
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.errors import UnsupportedError
from shellsieve.model.correlation import Correlation, Filter
from shellsieve.model.expr import Expr, Not, Op, Predicate, all_of, any_of
from shellsieve.model.fields import sigma_field
from shellsieve.model.rule import Related, Revision, Rule, Threat
from shellsieve.rules.attack import from_id, tactic
from shellsieve.rules.sigma_meta import correlation, for_pysigma, sigma_filter
from shellsieve.rules.source import RuleFileError, read_rule_file, rule_text

__all__ = ["load_sigma", "LEVELS"]

# Sigma level -> (severity label, risk score); "informational" sits below Elastic's lowest default.
LEVELS: dict[str, tuple[str, int]] = {
    "informational": ("low", 10), "low": ("low", 21), "medium": ("medium", 47),
    "high": ("high", 73), "critical": ("critical", 99),
}
_CMP = {CompareOperators.LT: Op.LT, CompareOperators.LTE: Op.LE,
        CompareOperators.GT: Op.GT, CompareOperators.GTE: Op.GE}
# Ops whose values mean "any of": predicates on one field with one of these ops and the same case
# rule are merged into one Predicate, so the compiler sees one hash set / one pattern group.
_MERGEABLE = frozenset({Op.EQ, Op.WILDCARD, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.REGEX, Op.CIDR})
_MULTI, _SINGLE = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE
# Where keywords look (see _keyword).
KEYWORD_FIELDS = ("message", "process.command_line")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe either way; libyaml is faster
# pySigma only compiles a rule's regexes to validate them (shellsieve runs them with Hyperscan or
# the bounded `regex` module). Its default RE2 validator rejects look-around and back-references,
# which the compiler does run (prefilter + bounded confirm), and logs to stderr; Python's `re`
# accepts them. Template variables and external sources stay off, as in the default policy.
_POLICY = SigmaPolicy(regex_engine=PythonRegexEngine())


class _Doc(NamedTuple):
    """One YAML document: its data, its 1-based start line, and lines of keys under `detection`."""

    data: Any
    line: int
    keys: dict[str, int]  # "sel" and "sel/Image|endswith" -> line

    def key(self, detection: str | None, field: str | None = None) -> tuple[str, int]:
        """(key text, line) of a field's key inside a detection, else of the detection, else the rule."""
        if detection is not None and field is not None:
            for k, line in self.keys.items():
                if k.startswith(detection + "/") and k[len(detection) + 1:].split("|")[0] == field:
                    return k[len(detection) + 1:], line
        return detection or "", self.keys.get(detection or "", self.line)


# ---------------------------------------------------------------- values


def _string(field: str, s: SigmaString) -> Predicate:
    """The narrowest operator for a SigmaString whose wildcards pySigma's modifiers have placed.

    WILDCARD values use `*` and `?` as wildcards and a backslash to escape the next character
    (`\\*`, `\\?`, `\\\\` are literal); EQ / CONTAINS / STARTSWITH / ENDSWITH values are literal text.
    """
    parts = list(s.iter_parts())
    if any(isinstance(p, Placeholder) for p in parts):
        raise UnsupportedError(s.to_plain(), "placeholders (%name%, `expand`) need a processing pipeline")
    cased = isinstance(s, SigmaCasedString)
    texts = [p for p in parts if isinstance(p, str)]
    if len(texts) == len(parts):
        return Predicate(field, Op.EQ, ("".join(texts),), cased)
    if len(parts) == 2 and parts[1] is _MULTI and isinstance(parts[0], str):
        return Predicate(field, Op.STARTSWITH, (parts[0],), cased)
    if len(parts) == 2 and parts[0] is _MULTI and isinstance(parts[1], str):
        return Predicate(field, Op.ENDSWITH, (parts[1],), cased)
    if len(parts) == 3 and parts[0] is _MULTI and parts[2] is _MULTI and isinstance(parts[1], str):
        return Predicate(field, Op.CONTAINS, (parts[1],), cased)
    out = "".join("*" if p is _MULTI else "?" if p is _SINGLE else _escape(str(p)) for p in parts)
    return Predicate(field, Op.WILDCARD, (out,), cased)


def _escape(text: str) -> str:
    return "".join("\\" + c if c in "*?\\" else c for c in text)


def _regex(field: str, r: SigmaRegularExpression) -> Predicate:
    """Sigma `re` is an unanchored search, case-sensitive unless `|i`; m / s become inline flags."""
    if r.contains_placeholder():
        raise UnsupportedError(str(r.regexp), "placeholders in a regex need a processing pipeline")
    # pySigma keeps the pattern as a SigmaString built without escaping, so its parts joined with
    # `*` / `?` for the wildcard markers are the regex text (after any contains/startswith/endswith).
    prefix = ("(?m)" if SigmaRegularExpressionFlag.MULTILINE in r.flags else "") + (
        "(?s)" if SigmaRegularExpressionFlag.DOTALL in r.flags else "")
    ignore_case = SigmaRegularExpressionFlag.IGNORECASE in r.flags
    return Predicate(field, Op.REGEX, (prefix + r.regexp.to_plain(regex=True),), not ignore_case)


def _value(field: str, value: Any) -> Expr:
    """One pySigma value (modifiers applied) as an expression on `field` (an ECS name)."""
    if isinstance(value, SigmaExpansion):  # windash, base64offset: alternatives, always OR-ed
        return _any([_value(field, v) for v in value.values])
    if isinstance(value, SigmaString):
        return _string(field, value)
    if isinstance(value, SigmaRegularExpression):
        return _regex(field, value)
    if isinstance(value, SigmaCIDRExpression):
        return Predicate(field, Op.CIDR, (str(value.network),))
    if isinstance(value, SigmaExists):
        return Predicate(field, Op.EXISTS) if value.exists else Not(Predicate(field, Op.EXISTS))
    if isinstance(value, SigmaNull):
        return Not(Predicate(field, Op.EXISTS))
    if isinstance(value, SigmaBool):
        return Predicate(field, Op.EQ, (value.boolean,))
    number = value.number if isinstance(value, SigmaCompareExpression) else value
    if isinstance(number, SigmaTimestampPart):  # before SigmaNumber: it is one
        raise UnsupportedError(number.timestamp_part.name.lower(), "timestamp-part modifiers are not supported")
    if isinstance(value, SigmaNumber):
        return Predicate(field, Op.EQ, (value.number,))
    if isinstance(value, SigmaCompareExpression) and value.op in _CMP:
        return Predicate(field, _CMP[value.op], (value.number.number,))
    if isinstance(value, SigmaFieldReference):
        if value.starts_with or value.ends_with:
            raise UnsupportedError("fieldref", "fieldref with contains / startswith / endswith is not supported")
        return Predicate(field, Op.FIELDREF, (_field(value.field),), True)
    raise UnsupportedError(type(value).__name__, f"Sigma value type {type(value).__name__} is not supported")


def _keyword(value: Any) -> Expr:
    """A keyword (a value without a field) searches the event's text: its raw log line, which text
    inputs carry in `message`, and its command line, which is the text of a process record (an
    auditd EXECVE record is its arguments). A substring match, case-insensitive unless `|cased`."""
    if isinstance(value, SigmaExpansion):
        return _any([_keyword(v) for v in value.values])
    if isinstance(value, SigmaNumber):
        value = SigmaString(str(value.number))
    if not isinstance(value, SigmaString):
        raise UnsupportedError(type(value).__name__, "keywords other than strings and numbers are not supported")
    if not value.startswith(_MULTI):
        value = _MULTI + value
    if not value.endswith(_MULTI):
        value = value + _MULTI
    return _any([_string(f, value) for f in KEYWORD_FIELDS])


def _field(name: str) -> str:
    return sigma_field(name) or name


def _any(terms: list[Expr]) -> Expr:
    """any_of, with same-field same-op predicates merged into one (their values are already "any of")."""
    merged: list[Expr] = []
    slot: dict[tuple[str, Op, bool], int] = {}
    for t in terms:
        if isinstance(t, Predicate) and t.op in _MERGEABLE:
            k = (t.field, t.op, t.case_sensitive)
            if k in slot:
                prev = merged[slot[k]]
                assert isinstance(prev, Predicate)
                extra = tuple(v for v in t.values if v not in prev.values)
                merged[slot[k]] = Predicate(prev.field, prev.op, prev.values + extra, prev.case_sensitive)
                continue
            slot[k] = len(merged)
        merged.append(t)
    return any_of(merged)


# ---------------------------------------------------------------- conditions


def _detection_name(node: Any) -> str | None:
    """Name of the detection a condition leaf came from (its identifier is in pySigma's parent chain)."""
    return next((p.identifier for p in node.parent_chain() if isinstance(p, ConditionIdentifier)), None)


def _condition(node: Any, doc: _Doc) -> Expr:
    if isinstance(node, ConditionAND):
        return all_of([_condition(a, doc) for a in node.args])
    if isinstance(node, ConditionOR):
        return _any([_condition(a, doc) for a in node.args])
    if isinstance(node, ConditionNOT):
        return Not(_condition(node.args[0], doc))
    if isinstance(node, ConditionValueExpression):
        try:
            return _keyword(node.value)
        except UnsupportedError as exc:
            name, line = doc.key(_detection_name(node))
            raise UnsupportedError(name or "keywords", f"{exc.message} ({exc.construct})", line) from None
    if isinstance(node, ConditionFieldEqualsValueExpression):
        try:
            return _value(_field(node.field), node.value)
        except UnsupportedError as exc:
            key, line = doc.key(_detection_name(node), node.field)
            raise UnsupportedError(key or exc.construct, f"{exc.message} ({exc.construct})", line) from None
    kind = type(node).__name__
    raise UnsupportedError(kind, f"Sigma condition element {kind} is not supported")


# ---------------------------------------------------------------- rules


def _threats(rule: SigmaRuleBase) -> tuple[Threat, ...]:
    out: list[Threat] = []
    for tag in rule.tags:
        if tag.namespace.lower() != "attack":
            continue
        name = tag.name.strip().lower()
        if name[:1] == "t" and (name[1:2].isdigit() or (name[1:2] == "a" and name[2:3].isdigit())):
            threat = from_id(name)
        elif (tactic_id := tactic(name)) is not None:
            # SigmaHQ writes ATT&CK's shortname (`defense-evasion`), older rules `defense_evasion`
            threat = from_id(tactic_id)
        elif name.replace("_", "").replace("-", "").isalpha():
            # a tactic the table has no id for (an ATT&CK newer than the table's):
            # keep the name as the source gives it rather than guess an id
            threat = Threat(tactic_name=name.replace("_", " ").replace("-", " ").title())
        else:  # groups (g0032), software (s0154)
            continue
        if threat not in out:
            out.append(threat)
    return tuple(out)


def _group(data: Any) -> str:
    """Coverage group from the logsource: "windows/process_creation", "linux/auditd" ..."""
    ls = data.get("logsource") if isinstance(data, dict) else None
    if not isinstance(ls, dict):
        return ""
    kind = ls.get("category") or ls.get("service") or ""
    return "/".join(str(x) for x in (ls.get("product"), kind) if x)


OS_TYPES = ("windows", "linux", "macos")  # Sigma logsource products that are ECS host.os.type values
# Sigma logsource categories -> the ECS event.category of their events (every decoder here sets it).
# A category not listed adds no condition.
CATEGORIES = {"process_creation": "process", "network_connection": "network", "dns_query": "network",
              "file_event": "file", "file_change": "file", "file_delete": "file", "file_rename": "file",
              "file_access": "file"}


def _translate(rule: SigmaRule, doc: _Doc, loc: Location) -> Rule:
    # Several conditions of one rule are alternatives (pySigma emits one query for each).
    query = any_of([_condition(c.parsed, doc) for c in rule.detection.parsed_condition])
    product = str(rule.logsource.product or "").lower()
    category = CATEGORIES.get(str(rule.logsource.category or "").lower())
    # The logsource is where a SIEM runs the rule (its index); in one mixed stream that is the
    # event's OS and kind, which every ECS producer and every decoder here sets. Without them a
    # Windows rule such as "Image not ending in .exe" fires on every Linux event, and a
    # `network_connection` rule such as "Image ends with /bin/bash" (SigmaHQ's "Linux Reverse Shell
    # Indicator") on every bash process start.
    where = [Predicate("host.os.type", Op.EQ, (product,), False)] if product in OS_TYPES else []
    if category is not None:
        where.append(Predicate("event.category", Op.EQ, (category,), False))
    if where:
        query = all_of([*where, query])
    return _rule(rule, doc, loc, query, _group(doc.data), str(rule.logsource.category or ""))


def _rule(rule: SigmaRuleBase, doc: _Doc, loc: Location, query: Expr | Correlation | Filter, group: str,
          category: str, rid: str | None = None) -> Rule:
    """The Rule of a Sigma rule, correlation or filter: its metadata as every Sigma rule's."""
    level = str(rule.level) if rule.level is not None else None
    severity, risk = LEVELS.get(level or "medium", LEVELS["medium"])
    return Rule(
        id=rid or str(rule.id), name=rule.title, ruleset="sigma", query=query, location=loc,
        severity=severity, risk_score=risk, level=level, threats=_threats(rule),
        references=tuple(str(r) for r in rule.references), description=(rule.description or "").strip(),
        language="sigma", group=group,
        tags=tuple(f"{t.namespace}.{t.name}".lower() for t in rule.tags),
        status=str(rule.status).lower() if rule.status is not None else "",
        revision=_revision(rule), uuid=str(rule.id) if rule.id is not None else "",
        version=str(rule.modified or rule.date or ""), author=_authors(rule.author),
        license=str(rule.license or ""), category=category, ref_name=rule.name or "",
    )


def _meta(rule: SigmaCorrelationRule | SigmaFilter, doc: _Doc, loc: Location, rid: str) -> Rule:
    """A correlation or filter as a Rule (UnsupportedError for what is not run)."""
    if isinstance(rule, SigmaCorrelationRule):
        corr = correlation(rule, doc.data)
        return _rule(rule, doc, loc, corr, "correlation", corr.type, rid)
    cond = any_of([_condition(c.parsed, doc) for c in rule.filter.parsed_condition])
    return _rule(rule, doc, loc, sigma_filter(rule, cond), "filter", "filter", rid)


def _authors(author: str | None) -> tuple[str, ...]:
    """SigmaHQ writes several authors in one string, comma-separated (ECS rule.author is a list)."""
    return tuple(a.strip() for a in (author or "").split(",") if a.strip())


def _revision(rule: SigmaRuleBase) -> Revision:
    """`modified`, `date` and `related` (pySigma has checked them: dates, UUIDs, known types)."""
    related = rule.related.related if rule.related is not None else []
    return Revision(modified=rule.modified, created=rule.date,
                    related=tuple(Related(str(r.id), r.type.name.lower()) for r in related))


def _check_unique_keys(node: yaml.Node) -> None:
    """pySigma's own loader rejects duplicate keys but SigmaCollection.from_yaml does not; a
    silently dropped duplicate would run the rule with another meaning."""
    stack, seen_nodes = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen_nodes:  # an alias: checked once (and no blow-up on alias bombs)
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            keys: set[str] = set()
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in keys:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {k.value!r}", k.start_mark)
                    keys.add(k.value)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def _detection_keys(node: yaml.Node) -> dict[str, int]:
    """Lines of `detection` names and of the field keys inside each ("sel", "sel/Image|endswith")."""
    keys: dict[str, int] = {}
    top = node.value if isinstance(node, yaml.MappingNode) else []
    for det in (v for k, v in top if k.value == "detection" and isinstance(v, yaml.MappingNode)):
        for name, body in det.value:
            if not isinstance(name, yaml.ScalarNode):
                continue
            keys.setdefault(name.value, name.start_mark.line + 1)
            items = body.value if isinstance(body, yaml.SequenceNode) else [body]
            for item in (i for i in items if isinstance(i, yaml.MappingNode)):
                for k, _ in (kv for kv in item.value if isinstance(kv[0], yaml.ScalarNode)):
                    keys.setdefault(f"{name.value}/{k.value}", k.start_mark.line + 1)
    return keys


def _documents(text: str) -> list[_Doc]:
    """Every non-empty YAML document, safely loaded, with its start line and its detection key lines."""
    docs: list[_Doc] = []
    loader = _Loader(text)
    node = None
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node() said a document follows
            _check_unique_keys(node)
            data = loader.construct_document(node)
            if data is not None:
                docs.append(_Doc(data, node.start_mark.line + 1, _detection_keys(node)))
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML's own failures outside YAMLError: a date such as 2026-13-01 (ValueError from
        # datetime), nesting past the recursion limit. The file is still one that does not load.
        raise yaml.MarkedYAMLError(problem=f"{type(exc).__name__}: {exc}",
                                   problem_mark=node.start_mark if node is not None else None) from None
    finally:
        loader.dispose()
    return docs


def _raw_id(doc: _Doc) -> str | None:
    rid = doc.data.get("id") if isinstance(doc.data, dict) else None
    return str(rid) if isinstance(rid, (str, int)) else None


def _rule_docs(rules: list[Any], docs: list[_Doc]) -> list[_Doc]:
    """The document each parsed rule came from (`action: global / repeat` collections need a search)."""
    candidates = [d for d in docs if d.data.get("action") not in ("global", "reset") and "filter" not in d.data]
    if len(candidates) == len(rules):
        return candidates
    by_id = {_raw_id(d): d for d in reversed(candidates)}
    return [by_id.get(str(r.id) if r.id else None, docs[0]) for r in rules]


def _pysigma_diag(exc: Exception, path: Path, doc: _Doc, rid: str | None) -> Diagnostic:
    """A pySigma error, pointed at the detection key it names (e.g. the key of an unknown modifier)."""
    msg = str(exc)
    quoted = msg.split("'")[1] if msg.count("'") >= 2 else ""
    construct, line = type(exc).__name__, doc.line
    if isinstance(exc, SigmaConditionError) and "condition" in doc.keys:
        detection = doc.data.get("detection")
        construct, line = str(detection.get("condition", "")), doc.keys["condition"]
    for k, kline in doc.keys.items():
        if quoted and "/" in k and quoted in k.split("/", 1)[1].split("|")[1:]:
            construct, line = k.split("/", 1)[1], kline
            break
    return Diagnostic(Code.PARSE, "error", Location(str(path), line), rid, construct, msg)


def _load_unit(unit: list[_Doc], path: Path) -> tuple[list[Rule], list[Diagnostic]]:
    """Rules of documents parsed together (one document, or a whole file that uses `action:`)."""
    rules: list[Rule] = []
    diags: list[Diagnostic] = []
    try:
        collection = SigmaCollection.from_dicts(
            [for_pysigma(d.data) for d in unit], collect_errors=True, resolve_references=False, policy=_POLICY)
    except (SigmaError, AttributeError, TypeError, ValueError, KeyError) as exc:
        # pySigma collects most errors; a few malformed shapes (a non-string key) still raise.
        return [], [Diagnostic(Code.PARSE, "error", Location(str(path), unit[0].line), _raw_id(unit[0]),
                               type(exc).__name__, f"pySigma cannot parse the rule: {exc}")]
    own = {id(e) for r in [*collection.rules, *collection.filters] for e in r.errors}
    diags.extend(_pysigma_diag(e, path, unit[0], _raw_id(unit[0])) for e in collection.errors if id(e) not in own)
    filter_docs = [d for d in unit if "filter" in d.data]
    pairs: list[tuple[SigmaRuleBase, _Doc]] = [*zip(collection.rules, _rule_docs(collection.rules, unit), strict=True),
                                               *zip(collection.filters, filter_docs, strict=True)]
    for rule, doc in pairs:
        loc = Location(str(path), doc.line)
        rid = str(rule.id) if rule.id else _raw_id(doc)
        if rule.errors:
            diags.extend(_pysigma_diag(e, path, doc, rid) for e in rule.errors)
        elif rule.id is None and not isinstance(rule, SigmaFilter):
            diags.append(Diagnostic(Code.SCHEMA, "error", loc, None, "id", "a Sigma rule needs an `id`"))
        else:
            try:
                if isinstance(rule, (SigmaCorrelationRule, SigmaFilter)):
                    # a filter's id is optional: one made of its place stands for it
                    rules.append(_meta(rule, doc, loc, rid or f"filter:{path.name}:{doc.line}"))
                else:
                    assert isinstance(rule, SigmaRule)
                    rules.append(_translate(rule, doc, loc))
            except UnsupportedError as exc:
                where = Location(str(path), exc.line or doc.line)
                diags.append(Diagnostic(Code.UNSUPPORTED_CONSTRUCT, "error", where, rid, exc.construct, exc.message))
            except SigmaError as exc:  # the condition is parsed lazily, here
                diags.append(_pysigma_diag(exc, path, doc, rid))
            except Exception as exc:
                exc.add_note(f"while translating Sigma rule {rid} at {loc}")
                raise
    return rules, diags


def load_sigma(path: Path, data: bytes | None = None) -> tuple[list[Rule], list[Diagnostic]]:
    """Every rule of one Sigma YAML file (`data`: its bytes, if already read); a bad rule becomes a
    Diagnostic, never an exception."""
    try:
        docs = _documents(rule_text(read_rule_file(path) if data is None else data))
    except (RuleFileError, UnicodeDecodeError) as exc:
        return [], [Diagnostic(Code.PARSE, "error", Location(str(path)), None, "", f"cannot read the file: {exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [], [Diagnostic(Code.PARSE, "error", Location(str(path), mark.line + 1 if mark else 0), None,
                               "", f"invalid YAML: {exc}")]
    rules: list[Rule] = []
    diags: list[Diagnostic] = []
    for d in docs:
        if not isinstance(d.data, dict):
            diags.append(Diagnostic(Code.PARSE, "error", Location(str(path), d.line), None, type(d.data).__name__,
                                    "a Sigma document must be a mapping"))
    docs = [d for d in docs if isinstance(d.data, dict)]
    # `action: global / repeat / reset` documents act on the documents after them: parse those
    # files as one collection; otherwise each document alone, so one bad rule cannot hide another.
    units = [docs] if any("action" in d.data for d in docs) else [[d] for d in docs]
    for unit in units:
        if unit:
            r, dg = _load_unit(unit, path)
            rules.extend(r)
            group = _group(next((d.data for d in unit if "logsource" in d.data), None))
            diags.extend(msgspec.structs.replace(d, group=group) for d in dg)
    return rules, diags
