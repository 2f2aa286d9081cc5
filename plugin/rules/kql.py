"""KQL ("kuery") text -> model, with Elasticsearch's meaning on ECS keyword fields.

Elastic publishes no KQL parser on PyPI (detection-rules keeps one in its repository, unpackaged),
so this is a small recursive-descent parser over the subset detection rules use: `field:value`,
value lists `field:(a or b)`, `not`/`and`/`or` (any case; not > and > or), parentheses, `field:*`
(exists) and ranges (`field >= 3`). The token rules follow Elastic's own grammar (detection-rules'
`lib/kql/kql/kql.g`): an unquoted value has no whitespace, except a wildcard value, which may
span spaces (`* curl*`). Semantics, as Elasticsearch gives them on ECS fields:
- keyword fields match exactly and case-sensitively; an unquoted `*` is a wildcard; a quoted value
  is a phrase, so `*` inside quotes is a literal star;
- text fields (`message`, `error.message`, `x.text`) are analysed: a quoted value is a phrase
  (its words in a row), an unquoted one a `match` (any of its words), both case-insensitive;
- ip fields (`source.ip` ...) take an address or a CIDR network.
Free-text terms, wildcard field names and nested `field:{...}` queries are refused.
"""

from __future__ import annotations

import ipaddress
import re

from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import Expr, Not, Op, Predicate, Value, all_of, any_of

__all__ = ["parse_kql"]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<lparen>\() | (?P<rparen>\)) | (?P<lbrace>\{) | (?P<rbrace>\})
  | (?P<range><=|>=|<|>)
  | (?P<colon>:)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<word>(?:[^\s():<>"{}\\]|\\.)+)
""", re.X | re.S)

_KEYWORDS = {"or", "and", "not"}
MAX_DEPTH = 100  # nested parentheses and `not`s in one query
# ECS fields Elasticsearch analyses (match_only_text / text); `x.text` is the analysed view of x.
_TEXT_FIELDS = frozenset({"message", "error.message"})
# ECS fields of type ip: a value is an address or a CIDR network.
_IP_FIELDS = frozenset({"source.ip", "destination.ip", "client.ip", "server.ip", "host.ip", "related.ip",
                        "source.nat.ip", "destination.nat.ip", "observer.ip"})
# A word of Lucene's standard tokenizer, near enough for log text: letters, digits and `_`, joined
# across `.` and `'` (UAX #29 MidNumLet: "rc.local" and "bpf_probe_write_user" are one word each).
_WORD = r"\w+(?:[.']\w+)*"
_BEFORE, _AFTER = r"(?<!\w)(?<!\w[.'])", r"(?!\w)(?![.']\w)"


class _Tok:
    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind: str, text: str, pos: int) -> None:
        self.kind, self.text, self.pos = kind, text, pos

    @property
    def keyword(self) -> str | None:
        low = self.text.lower()
        return low if self.kind == "word" and low in _KEYWORDS else None


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UnsupportedError(text[pos : pos + 20], f"KQL syntax error at {_where(text, pos)}")
        if m.lastgroup != "ws":
            out.append(_Tok(m.lastgroup or "", m.group(), pos))
        pos = m.end()
    return out


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


def _unescape(word: str) -> str:
    return re.sub(r"\\(.)", r"\1", word, flags=re.S)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0  # parentheses and `not`s open around the current term

    # -- helpers ----------------------------------------------------------------------------
    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (kind is not None and tok.kind != kind):
            where = _where(self.text, tok.pos) if tok else "end of query"
            got = tok.text if tok else "end of query"
            raise UnsupportedError(got, f"KQL syntax error at {where}: expected {kind or 'a term'}")
        self.i += 1
        return tok

    def at_keyword(self, kw: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.keyword == kw

    # -- query level ------------------------------------------------------------------------
    def query(self) -> Expr:
        expr = self.or_()
        if self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            raise UnsupportedError(tok.text, f"KQL syntax error at {_where(self.text, tok.pos)}")
        return expr

    def or_(self) -> Expr:
        terms = [self.and_()]
        while self.at_keyword("or"):
            self.i += 1
            terms.append(self.and_())
        return any_of(terms)

    def and_(self) -> Expr:
        terms = [self.not_()]
        while self.at_keyword("and"):
            self.i += 1
            terms.append(self.not_())
        return all_of(terms)

    def not_(self) -> Expr:
        tok = self.peek()
        if tok is not None and (tok.kind == "lparen" or tok.keyword == "not"):
            # Each level is a few Python frames here and in every walk of the expression after it:
            # bound it well below the recursion limit.
            self.depth += 1
            if self.depth > MAX_DEPTH:
                where = _where(self.text, tok.pos)
                raise UnsupportedError(tok.text, f"KQL nested more than {MAX_DEPTH} deep at {where}")
            self.i += 1
            if tok.kind == "lparen":
                inner = self.or_()
                self.take("rparen")
            else:
                inner = Not(self.not_())
            self.depth -= 1
            return inner
        return self.field_clause()

    def field_clause(self) -> Expr:
        tok = self.take("word")
        nxt = self.peek()
        if nxt is None or nxt.kind not in ("colon", "range"):
            raise UnsupportedError(tok.text, "free-text search without a field is not supported")
        field = _unescape(tok.text)
        if "*" in tok.text:
            raise UnsupportedError(tok.text, "wildcard field names are not supported")
        op = self.take()
        if op.kind == "range":
            value = self.take()
            if value.kind not in ("word", "quoted"):
                raise UnsupportedError(value.text, "a range needs a value")
            raw = _unescape(value.text[1:-1] if value.kind == "quoted" else value.text)
            ops = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE}
            return Predicate(field, ops[op.text], (_number(raw),))
        nxt = self.peek()
        if nxt is not None and nxt.kind == "lbrace":
            raise UnsupportedError(f"{field}:{{...}}", "nested field queries are not supported")
        if nxt is not None and nxt.kind == "lparen":
            # Only a parenthesised list takes and/or/not among values; bare, one value.
            self.i += 1
            inner = self.value_or(field)
            self.take("rparen")
            return inner
        return self.value(field)

    def value(self, field: str) -> Expr:
        """One value; unquoted words in a row form one value only if it has a wildcard (kql.g's
        WILDCARD_LITERAL), as `* curl*` does; the whitespace between them is part of it."""
        tok = self.take()
        end = self.i
        while tok.kind == "word" and not tok.keyword and end < len(self.toks):
            nxt = self.toks[end]
            if nxt.kind != "word" or nxt.keyword:
                break
            end += 1
        if end > self.i:
            last = self.toks[end - 1]
            text = self.text[tok.pos : last.pos + len(last.text)]
            if "*" not in text:
                raise UnsupportedError(text, f"KQL syntax error at {_where(self.text, tok.pos)}: "
                                             "unquoted values with spaces need a wildcard or quotes")
            tok, self.i = _Tok("word", text, tok.pos), end
        return _value(field, tok)

    # -- value lists: field:(a or b and not c) -------------------------------------------------
    def value_or(self, field: str) -> Expr:
        terms = [self.value_and(field)]
        while self.at_keyword("or"):
            self.i += 1
            terms.append(self.value_and(field))
        return _merge_any(any_of(terms))

    def value_and(self, field: str) -> Expr:
        terms = [self.value_not(field)]
        while self.at_keyword("and"):
            self.i += 1
            terms.append(self.value_not(field))
        return all_of(terms)

    def value_not(self, field: str) -> Expr:
        if self.at_keyword("not"):
            self.i += 1
            return Not(self.value_not(field))
        tok = self.peek()
        if tok is not None and tok.kind == "lparen":
            self.i += 1
            inner = self.value_or(field)
            self.take("rparen")
            return inner
        return self.value(field)


def _number(raw: str) -> int | float | str:
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def _wildcard(raw: str) -> str:
    """Unquoted KQL value -> model WILDCARD: `*` stays the wildcard; `?` and `\\` become literals
    (KQL has no single-character wildcard); `\\*` is a literal star."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append("\\" + nxt if nxt in "*?\\" else nxt)
            i += 2
            continue
        out.append(c if c == "*" else "\\" + c if c in "?\\" else c)
        i += 1
    return "".join(out)


def _analysed(field: str, text: str, phrase: bool) -> Expr:
    """A text field: the words of `text` in a row (phrase) or any of them (match), by word bounds."""
    words = re.findall(_WORD, text)
    if not words:
        raise UnsupportedError(text, f"no words to search for in the text field {field}")
    if not phrase:
        return Predicate(field, Op.REGEX, tuple(_BEFORE + re.escape(w) + _AFTER for w in words), False)
    pattern = r"\W+".join(_BEFORE + re.escape(w) + _AFTER for w in words)
    return Predicate(field, Op.REGEX, (pattern,), False)


def _ip(field: str, raw: str) -> Expr:
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise UnsupportedError(raw, f"{field} is an ip field; {raw!r} is neither an address nor a network") from None
    return Predicate(field, Op.CIDR, (str(net),))


def _typed(field: str, tok: _Tok) -> Expr | None:
    """A value on a text or ip field, which Elasticsearch does not match as a keyword; else None."""
    ip = field in _IP_FIELDS
    typed = ip or field in _TEXT_FIELDS or field.endswith(".text")
    if not typed or tok.kind not in ("word", "quoted") or tok.keyword or tok.text == "*":
        return None
    quoted = tok.kind == "quoted"
    if not quoted and "*" in tok.text:
        raise UnsupportedError(tok.text, f"wildcards on the analysed or ip field {field} are not supported")
    body = _unescape(tok.text[1:-1] if quoted else tok.text)
    return _ip(field, body) if ip else _analysed(field.removesuffix(".text"), body, phrase=quoted)


def _value(field: str, tok: _Tok) -> Expr:
    if (typed := _typed(field, tok)) is not None:
        return typed
    if tok.kind == "quoted":
        # A phrase: every character literal, `*` included.
        return Predicate(field, Op.EQ, (_unescape(tok.text[1:-1]),), case_sensitive=True)
    if tok.kind != "word" or tok.keyword:
        raise UnsupportedError(tok.text, f"expected a value for {field}")
    raw = tok.text
    if raw == "*":
        return Predicate(field, Op.EXISTS)
    if re.search(r"(?<!\\)(?:\\\\)*\*", raw):
        # Unquoted wildcard: keep `*` as the wildcard, escape every other special char for the model.
        pattern = _wildcard(raw)
        return Predicate(field, Op.WILDCARD, (pattern,), case_sensitive=True)
    text = _unescape(raw)
    values: tuple[str | int | float | bool, ...] = (text,)
    low = text.lower()
    # An unquoted value takes the field's type: numbers and booleans also match as such.
    if low in ("true", "false"):
        values = (text, low == "true")
    elif isinstance(num := _number(text), (int, float)):
        values = (text, num)
    return Predicate(field, Op.EQ, values, case_sensitive=True)


def _merge_any(expr: Expr) -> Expr:
    """`field:(a or b or c)` as one predicate with three values, where the parts allow it."""
    from shellsieve.model.expr import AnyOf

    if not isinstance(expr, AnyOf):
        return expr
    merged: dict[tuple[str, Op, bool], list[Value]] = {}
    rest: list[Expr] = []
    for t in expr.terms:
        if isinstance(t, Predicate) and t.op in (Op.EQ, Op.WILDCARD):
            merged.setdefault((t.field, t.op, t.case_sensitive), []).extend(t.values)
        else:
            rest.append(t)
    preds: list[Expr] = [Predicate(f, op, tuple(dict.fromkeys(v)), cs)
                         for (f, op, cs), v in merged.items()]
    return any_of(preds + rest)


def parse_kql(text: str) -> Expr:
    """KQL query -> expression; UnsupportedError names the construct it cannot translate."""
    return _Parser(text).query()
