"""Seeded ECS event generator for the EQL differential test (tests/test_diff_eql.py).

It walks an EQL condition as parsed by the test's oracle walker (string predicates arrive as
`es:` function calls that keep their case rule) and builds nested ECS events from the rule's own
literals: values that match, values that just miss (one char changed, an end dropped, a wildcard
boundary), case variants, arrays holding the value among others, missing fields and numbers.
Which of them match is for the engines to say; this module only aims.
"""

from __future__ import annotations

import copy
import ipaddress
import random
import re
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from eql import ast

__all__ = ["Leaf", "MISSING", "events_for", "get_path", "hit_value", "leaves", "satisfying", "set_path",
           "variant_values"]

Path = tuple[str | int, ...]
MISSING: Any = object()  # a field deleted from the event
FILLERS = ("", "x", "a/b c", "-Zq")
DECOYS = ("decoy", "-", "/tmp/zz")


@dataclass(frozen=True)
class Leaf:
    """One comparison of a rule: `field <kind> values`, with the case rule it has in Elasticsearch."""

    path: Path
    kind: str  # eq | wild | regex | starts | ends | contains | cidr | cmp | len | null | notnull
    values: tuple[Any, ...] = ()
    case_sensitive: bool = True
    op: str = "=="  # for cmp / len


def _path(node: Any) -> Path | None:
    return (node.base, *node.path) if isinstance(node, ast.Field) else None


def _lits(nodes: Any) -> tuple[Any, ...]:
    return tuple(n.value for n in nodes if isinstance(n, (ast.String, ast.Number, ast.Boolean)))


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_FUNC_KINDS = {"startswith": "starts", "endswith": "ends", "stringcontains": "contains", "cidrmatch": "cidr",
               "wildcard": "wild", "regex": "regex", "in": "eq"}


def _leaf(node: Any) -> Leaf | None:
    """The leaf a condition node stands for, or None when it is not one the generator understands."""
    if isinstance(node, ast.Comparison):
        left, op, right = node.left, node.comparator, node.right
        if not isinstance(left, (ast.Field, ast.FunctionCall)):
            left, right, op = right, left, _FLIP[op]
        if isinstance(left, ast.FunctionCall) and left.name.lower() == "length" and _path(left.arguments[0]):
            return Leaf(_path(left.arguments[0]), "len", _lits([right]), True, op)  # type: ignore[arg-type]
        path = _path(left)
        return Leaf(path, "cmp", _lits([right]), True, op) if path and _lits([right]) else None
    if isinstance(node, ast.InSet):
        path = _path(node.expression)
        return Leaf(path, "eq", _lits(node.container), True) if path else None
    if isinstance(node, (ast.IsNull, ast.IsNotNull)):
        path = _path(node.expr)
        return Leaf(path, "null" if isinstance(node, ast.IsNull) else "notnull") if path else None
    if isinstance(node, ast.FunctionCall) and node.name.startswith("es:") and node.arguments:
        base = node.name[3:].rstrip("~")
        path = _path(node.arguments[0])
        values = tuple(v for v in _lits(node.arguments[1:]) if isinstance(v, str))
        if path is None or not values or base not in _FUNC_KINDS:
            return None
        return Leaf(path, _FUNC_KINDS[base], values, not node.name.endswith("~"))
    return None


def leaves(node: Any) -> list[Leaf]:
    """Every leaf of a condition, in source order."""
    found = _leaf(node)
    if found is not None:
        return [found]
    if isinstance(node, (ast.And, ast.Or)):
        return [lf for t in node.terms for lf in leaves(t)]
    if isinstance(node, ast.Not):
        return leaves(node.term)
    return []


# -- values ---------------------------------------------------------------------------------

def _recase(text: str, rng: random.Random) -> str:
    """A case variant that differs from `text` when any letter can change."""
    variants = [v for v in (text.upper(), text.lower(), text.swapcase(), text.title()) if v != text]
    return rng.choice(variants) if variants else text


def _wild_instance(pattern: str, rng: random.Random, filler: str | None = None) -> str:
    """A string the wildcard pattern matches: `*` -> a filler, `?` -> one character."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(rng.choice(FILLERS) if filler is None else filler)
        elif ch == "?":
            out.append(rng.choice("a7Z."))
        else:
            out.append(ch)
    return "".join(out)


def _wild_boundary_misses(pattern: str) -> list[str]:
    """Instances that lose the literal character next to a wildcard: the boundary the pattern guards."""
    out = []
    for i, ch in enumerate(pattern):
        if ch in "*?":
            continue
        near = (i > 0 and pattern[i - 1] in "*?") or (i + 1 < len(pattern) and pattern[i + 1] in "*?")
        if near:
            cut = pattern[:i] + pattern[i + 1:]
            out.append(cut.replace("*", "").replace("?", "a"))
    return out[:4]


_CATEGORY_RE = {sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_WORD: r"\w", sre.CATEGORY_SPACE: r"\s"}


def _char_in_class(ch: str, items: list[Any]) -> bool:
    negate = hit = False
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            hit |= ord(ch) == av
        elif op is sre.RANGE:
            hit |= av[0] <= ord(ch) <= av[1]
        elif op is sre.CATEGORY:
            hit |= bool(re.fullmatch(_CATEGORY_RE.get(av, r"(?!)"), ch))
    return hit != negate


_CHARS = "aZ7_-./ :xQ0"
_POOL = _CHARS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _regex_instance(items: Any, rng: random.Random) -> str:
    """A string (most likely) matching a parsed regex; the rules' Lucene regexes parse as Python ones."""
    out: list[str] = []
    for op, av in items:
        if op is sre.LITERAL:
            out.append(chr(av))
        elif op is sre.NOT_LITERAL:
            out.append(rng.choice([c for c in _CHARS if ord(c) != av]))
        elif op is sre.ANY:
            out.append(rng.choice(_CHARS))
        elif op is sre.IN:
            pool = [c for c in _POOL if _char_in_class(c, av)]
            out.append(rng.choice(pool) if pool else "?")
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            out.extend(_regex_instance(sub, rng) for _ in range(rng.randint(lo, min(hi, lo + 3))))
        elif op is sre.SUBPATTERN:
            out.append(_regex_instance(av[-1], rng))
        elif op is sre.BRANCH:
            out.append(_regex_instance(rng.choice(av[1]), rng))
        elif op is sre.CATEGORY:
            out.append({sre.CATEGORY_DIGIT: "7", sre.CATEGORY_SPACE: " "}.get(av, "w"))
    return "".join(out)


def _cidr_inside(network: str, rng: random.Random) -> str:
    net = ipaddress.ip_network(network, strict=False)
    return str(net.network_address + rng.randrange(net.num_addresses))


def _cidr_outside(network: str) -> str | None:
    net = ipaddress.ip_network(network, strict=False)
    if int(net.broadcast_address) >= 2 ** net.max_prefixlen - 1:
        return None
    return str(net.broadcast_address + 1)


def _number_hit(op: str, v: float) -> float:
    return {">": v + 1, "<": v - 1}.get(op, v + 1 if op == "!=" else v)


def hit_value(leaf: Leaf, rng: random.Random) -> Any:
    """A value that satisfies the leaf (the engines still judge it)."""
    v = rng.choice(leaf.values) if leaf.values else None
    if leaf.kind == "eq":
        return v if leaf.case_sensitive or not isinstance(v, str) else rng.choice([v, _recase(v, rng)])
    if leaf.kind == "wild":
        inst = _wild_instance(v, rng)
        return inst if leaf.case_sensitive else rng.choice([inst, _recase(inst, rng)])
    if leaf.kind == "regex":
        try:
            return _regex_instance(sre_parse.parse(v), rng)
        except Exception:  # a construct sre cannot parse: the literal text is as good a guess as any
            return v
    if leaf.kind == "starts":
        return v + rng.choice(FILLERS)
    if leaf.kind == "ends":
        return rng.choice(FILLERS) + v
    if leaf.kind == "contains":
        return rng.choice(FILLERS) + v + rng.choice(FILLERS)
    if leaf.kind == "cidr":
        return _cidr_inside(v, rng)
    if leaf.kind == "cmp":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return _number_hit(leaf.op, v)
        return v + "x" if leaf.op == "!=" and isinstance(v, str) else v
    if leaf.kind == "len" and isinstance(v, int):
        return "L" * max(0, int(_number_hit(leaf.op, v)))
    if leaf.kind == "notnull":
        return "present"
    return MISSING


def _string_misses(s: str, rng: random.Random) -> list[str]:
    """One char changed, an end dropped, an end grown."""
    out = [s[1:], s[:-1], "q" + s, s + "q"] if s else ["q"]
    if s:
        i = rng.randrange(len(s))
        out.append(s[:i] + ("Q" if s[i] != "Q" else "R") + s[i + 1:])
    return [m for m in out if m != s]


def variant_values(leaf: Leaf, rng: random.Random) -> list[Any]:
    """The values a mutation may give the leaf's field: hits, near misses, case variants, arrays, missing."""
    hit = hit_value(leaf, rng)
    out: list[Any] = [hit, MISSING]
    if isinstance(hit, str):
        out += _string_misses(hit, rng)
        out += [hit.upper(), hit.lower(), _recase(hit, rng)]
    elif isinstance(hit, (int, float)) and not isinstance(hit, bool):
        out += [hit - 1, hit + 1, hit + 0.5, hit - 0.5]
    if leaf.kind == "wild":
        v = rng.choice(leaf.values)
        out += [_wild_instance(v, rng, filler="")] + _wild_boundary_misses(v)
    if leaf.kind == "cidr":
        out += [x for x in (_cidr_outside(rng.choice(leaf.values)),) if x]
    if leaf.kind not in ("len", "cmp") and isinstance(hit, str):
        # ECS fields may hold arrays: the value among decoys, alone, a miss among decoys, a case variant
        miss = rng.choice(_string_misses(hit, rng))
        out += [[rng.choice(DECOYS), hit], [hit], [rng.choice(DECOYS), miss], [_recase(hit, rng), "z"]]
    return out


# -- events ---------------------------------------------------------------------------------

def get_path(doc: dict[str, Any], path: Path) -> Any:
    node: Any = doc
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
        else:
            return MISSING
    return node


def set_path(doc: dict[str, Any], path: Path, value: Any) -> None:
    """Set (or delete, for MISSING) a nested field; a path blocked by a non-object value is left alone."""
    node = doc
    for key in path[:-1]:
        nxt = node.setdefault(str(key), {})
        if not isinstance(nxt, dict):
            return
        node = nxt
    if value is MISSING:
        node.pop(str(path[-1]), None)
    else:
        node[str(path[-1])] = value


def _assign(doc: dict[str, Any], leaf: Leaf, value: Any, seen: set[Path]) -> None:
    """Set a leaf's field; a second text value for a field already set in this pass joins it in an
    array (ECS multi-values), so `args == "-c" and args == "id"` can hold at once."""
    old = get_path(doc, leaf.path)
    if (leaf.path in seen and leaf.kind not in ("cmp", "len") and isinstance(value, str)
            and isinstance(old, (str, list))):
        value = [*(old if isinstance(old, list) else [old]), value]
    seen.add(leaf.path)
    set_path(doc, leaf.path, value)


def _satisfy(node: Any, want: bool, doc: dict[str, Any], rng: random.Random, seen: set[Path]) -> None:
    """Assign fields so that `node` is likely `want`; conflicting terms may still spoil it."""
    leaf = _leaf(node)
    if leaf is not None:
        value = hit_value(leaf, rng)
        if not want:
            misses = [v for v in variant_values(leaf, rng) if v != value and not isinstance(v, list)]
            value = rng.choice(misses) if misses else MISSING
        _assign(doc, leaf, value, seen)
    elif isinstance(node, ast.Not):
        _satisfy(node.term, not want, doc, rng, seen)
    elif isinstance(node, (ast.And, ast.Or)):
        every = want == isinstance(node, ast.And)
        for term in node.terms if every else [rng.choice(node.terms)]:
            _satisfy(term, want, doc, rng, seen)


def base_event(category: str) -> dict[str, Any]:
    cat = "process" if category == "any" else category
    return {"event": {"category": [cat], "type": ["start"]}, "host": {"os": {"type": "linux"}}}


def satisfying(condition: Any, category: str, rng: random.Random, want: bool = True) -> dict[str, Any]:
    """One event aimed at making the condition `want`."""
    doc = base_event(category)
    _satisfy(condition, want, doc, rng, set())
    return doc


def events_for(condition: Any, category: str, rng: random.Random, n_sat: int = 8, n_false: int = 3,
               n_mut: int = 28) -> list[dict[str, Any]]:
    """Events for one event query: aimed-true, aimed-false, one-field mutations and category variants."""
    leafs = leaves(condition)
    no_array = {lf.path for lf in leafs if lf.kind == "len"}  # ES `length()` of a multi-value is ill-defined
    sats = [satisfying(condition, category, rng) for _ in range(n_sat)]
    out = sats + [satisfying(condition, category, rng, want=False) for _ in range(n_false)]
    for _ in range(n_mut if leafs else 0):
        doc = copy.deepcopy(rng.choice(sats))
        leaf = rng.choice(leafs)
        choices = [v for v in variant_values(leaf, rng) if not (isinstance(v, list) and leaf.path in no_array)]
        set_path(doc, leaf.path, rng.choice(choices))
        out.append(doc)
    if category != "any":
        other = "network" if category != "network" else "file"
        for cat in ([category.upper()], [other], [category, "iam"], category):
            doc = copy.deepcopy(sats[0])
            doc["event"]["category"] = cat
            out.append(doc)
    return out
