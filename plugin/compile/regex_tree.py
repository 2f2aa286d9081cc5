"""regex_tree: Python `re` syntax -> a small typed tree, for anchors.py to read literals and widths from.

The tree is the one CPython 3.11's own (private) regex parser builds, so what anchors derive does
not depend on how a pattern is spelled beyond what `re` itself sees: a class of one character is
that character, `[^x]` is NotChar, a non-capturing group without flags is spliced into its
sequence, a repeated one repeats its items, alternatives that all start with the same simple node
have it factored out in front, and alternatives that are all single characters or sets become one
Set. `parse` returns None for any pattern `re.compile` would reject. We keep our own parser
because the standard library's is private (renamed once already, in 3.11) and free to change.
Where CPython only warns (a FutureWarning for `[[` or `--` in a class), the pattern parses as `re`
parses it today.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

__all__ = ["At", "AnyChar", "Assert", "Atomic", "Branch", "Category", "Char", "Flag", "Group", "GroupRef",
           "GroupRefExists", "MAXREPEAT", "MAXWIDTH", "Node", "NotChar", "Parsed", "Range", "Repeat", "RepeatKind",
           "Set", "min_width", "parse"]

MAXREPEAT = (1 << 32) - 1  # CPython's bound: a count at or above it is an error
MAXWIDTH = 1 << 64  # CPython caps widths here


class Flag(enum.Flag):
    IGNORECASE = enum.auto()
    LOCALE = enum.auto()
    MULTILINE = enum.auto()
    DOTALL = enum.auto()
    VERBOSE = enum.auto()
    ASCII = enum.auto()
    TEMPLATE = enum.auto()
    UNICODE = enum.auto()


_FLAGS = {"i": Flag.IGNORECASE, "L": Flag.LOCALE, "m": Flag.MULTILINE, "s": Flag.DOTALL, "x": Flag.VERBOSE,
          "a": Flag.ASCII, "t": Flag.TEMPLATE, "u": Flag.UNICODE}
_TYPE_FLAGS = Flag.ASCII | Flag.LOCALE | Flag.UNICODE
_NO_FLAGS = Flag(0)


class Category(enum.Enum):
    DIGIT = "d"
    NOT_DIGIT = "D"
    SPACE = "s"
    NOT_SPACE = "S"
    WORD = "w"
    NOT_WORD = "W"


class At(enum.Enum):
    BEGINNING = "^"
    END = "$"
    BEGINNING_STRING = "A"
    END_STRING = "Z"
    BOUNDARY = "b"
    NON_BOUNDARY = "B"


class RepeatKind(enum.Enum):
    GREEDY = ""
    LAZY = "?"
    POSSESSIVE = "+"


@dataclass(frozen=True)
class Char:
    code: int


@dataclass(frozen=True)
class NotChar:
    code: int


@dataclass(frozen=True)
class AnyChar:
    pass


@dataclass(frozen=True)
class Range:
    lo: int
    hi: int


SetItem = Char | Range | Category


@dataclass(frozen=True)
class Set:
    members: tuple[SetItem, ...]
    negate: bool = False


@dataclass(frozen=True)
class Group:
    index: int | None  # None: not capturing (then it changes flags, or it would have been spliced)
    add_flags: Flag
    del_flags: Flag
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Branch:
    alternatives: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True)
class Repeat:
    lo: int
    hi: int | None  # None: unbounded
    items: tuple[Node, ...]
    kind: RepeatKind = RepeatKind.GREEDY


@dataclass(frozen=True)
class Atomic:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Assert:
    behind: bool
    negate: bool
    items: tuple[Node, ...]


@dataclass(frozen=True)
class GroupRef:
    group: int
    width: int  # the group's shortest match


@dataclass(frozen=True)
class GroupRefExists:
    group: int
    yes: tuple[Node, ...]
    no: tuple[Node, ...] | None


Node = Char | NotChar | AnyChar | Set | At | Group | Branch | Repeat | Atomic | Assert | GroupRef | GroupRefExists

# Nodes CPython compares by value when it factors a common first node out of alternatives; any
# node holding a subpattern compares by identity there, so is never factored.
_SIMPLE = (Char, NotChar, AnyChar, Set, At, GroupRef)


@dataclass(frozen=True)
class Parsed:
    items: tuple[Node, ...]
    flags: Flag  # the global flags: inline ones at the start, and UNICODE unless ASCII


class _Error(Exception):
    pass


_DIGITS = frozenset("0123456789")
_OCTDIGITS = frozenset("01234567")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_ASCIILETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WHITESPACE = frozenset(" \t\n\r\v\f")
_SPECIAL = frozenset(".\\[{()*+?^$|")
_REPEAT_CHARS = frozenset("*+?{")

_ESCAPES = {"\\a": 7, "\\b": 8, "\\f": 12, "\\n": 10, "\\r": 13, "\\t": 9, "\\v": 11, "\\\\": 92}
_CATEGORIES = {"\\d": Category.DIGIT, "\\D": Category.NOT_DIGIT, "\\s": Category.SPACE,
               "\\S": Category.NOT_SPACE, "\\w": Category.WORD, "\\W": Category.NOT_WORD}
_ATS = {"\\A": At.BEGINNING_STRING, "\\b": At.BOUNDARY, "\\B": At.NON_BOUNDARY, "\\Z": At.END_STRING}


class _Source:
    """Tokens of a pattern: one character, or a backslash and the character after it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = 0
        self.next: str | None = None
        self._advance()

    def _advance(self) -> None:
        i = self.index
        if i >= len(self.text):
            self.next = None
            return
        char = self.text[i]
        if char == "\\":
            i += 1
            if i >= len(self.text):
                raise _Error("bad escape (end of pattern)")
            char += self.text[i]
        self.index = i + 1
        self.next = char

    def match(self, char: str) -> bool:
        if char == self.next:
            self._advance()
            return True
        return False

    def get(self) -> str | None:
        this = self.next
        self._advance()
        return this

    def getwhile(self, n: int, charset: frozenset[str]) -> str:
        out = ""
        for _ in range(n):
            if self.next not in charset:
                break
            out += self.next
            self._advance()
        return out

    def getuntil(self, terminator: str) -> str:
        out = ""
        while True:
            c = self.get()
            if c is None or (c == terminator and not out):
                raise _Error("missing name")
            if c == terminator:
                return out
            out += c

    def tell(self) -> int:
        return self.index - len(self.next or "")

    def seek(self, index: int) -> None:
        self.index = index
        self._advance()


class _State:
    def __init__(self) -> None:
        self.flags = _NO_FLAGS
        self.names: dict[str, int] = {}
        self.widths: list[int | None] = [None]  # per group, once closed; group 0 is the whole match
        self.lookbehind: int | None = None  # groups opened before the lookbehind being parsed
        self.condrefs: set[int] = set()

    @property
    def groups(self) -> int:
        return len(self.widths)

    def opengroup(self, name: str | None) -> int:
        gid = self.groups
        self.widths.append(None)
        if name is not None:
            if name in self.names:
                raise _Error("redefinition of group name")
            self.names[name] = gid
        return gid

    def checkgroup(self, gid: int) -> bool:
        return gid < self.groups and self.widths[gid] is not None

    def checklookbehind(self, gid: int) -> None:
        if self.lookbehind is not None and (not self.checkgroup(gid) or gid >= self.lookbehind):
            raise _Error("cannot refer to a group of the same lookbehind")


def min_width(items: tuple[Node, ...] | list[Node]) -> int:
    """The length of the shortest string `items` match (CPython's getwidth()[0])."""
    lo = 0
    for node in items:
        if isinstance(node, (Char, NotChar, AnyChar, Set)):
            lo += 1
        elif isinstance(node, Branch):
            lo += min((min_width(alt) for alt in node.alternatives), default=MAXWIDTH)
        elif isinstance(node, (Group, Atomic)):
            lo += min_width(node.items)
        elif isinstance(node, Repeat):
            lo += min_width(node.items) * node.lo
        elif isinstance(node, GroupRef):
            lo += node.width
        elif isinstance(node, GroupRefExists):
            lo += min(min_width(node.yes), min_width(node.no)) if node.no is not None else 0
    return min(lo, MAXWIDTH)


def _check_name(name: str) -> None:
    if not name.isidentifier():
        raise _Error("bad character in group name")


def _unicode_escape(source: _Source, escape: str, c: str) -> int | None:
    """The code point of a `\\x`, `\\u`, `\\U` or `\\N{...}` escape; None for any other escape."""
    digits = {"x": 2, "u": 4, "U": 8}.get(c)
    if digits is not None:
        escape += source.getwhile(digits, _HEXDIGITS)
        if len(escape) != digits + 2:
            raise _Error("incomplete escape")
        code = int(escape[2:], 16)
        if code > 0x10FFFF:
            raise _Error("bad escape")
        return code
    if c == "N":
        if not source.match("{"):
            raise _Error("missing {")
        try:
            return ord(unicodedata.lookup(source.getuntil("}")))
        except KeyError:
            raise _Error("undefined character name") from None
    return None


def _class_escape(source: _Source, escape: str) -> Char | Category:
    if escape in _ESCAPES:
        return Char(_ESCAPES[escape])
    if escape in _CATEGORIES:
        return _CATEGORIES[escape]
    c = escape[1:2]
    code = _unicode_escape(source, escape, c)
    if code is not None:
        return Char(code)
    if c in _OCTDIGITS:
        escape += source.getwhile(2, _OCTDIGITS)
        code = int(escape[1:], 8)
        if code > 0o377:
            raise _Error("octal escape out of range")
        return Char(code)
    if len(escape) == 2 and c not in _DIGITS and c not in _ASCIILETTERS:
        return Char(ord(escape[1]))
    raise _Error("bad escape")


def _escape(source: _Source, escape: str, state: _State) -> Node:
    if escape in _ATS:
        return _ATS[escape]
    if escape in _CATEGORIES:
        return Set((_CATEGORIES[escape],))
    if escape in _ESCAPES:
        return Char(_ESCAPES[escape])
    c = escape[1:2]
    code = _unicode_escape(source, escape, c)
    if code is not None:
        return Char(code)
    if c == "0":
        escape += source.getwhile(2, _OCTDIGITS)
        return Char(int(escape[1:], 8))
    if c in _DIGITS:  # an octal escape or a group reference
        if source.next in _DIGITS:
            escape += source.get()  # type: ignore[operator]  # a digit
            if escape[1] in _OCTDIGITS and escape[2] in _OCTDIGITS and source.next in _OCTDIGITS:
                escape += source.get()  # type: ignore[operator]  # a digit
                code = int(escape[1:], 8)
                if code > 0o377:
                    raise _Error("octal escape out of range")
                return Char(code)
        group = int(escape[1:])
        if group >= state.groups or not state.checkgroup(group):
            raise _Error("invalid group reference")
        state.checklookbehind(group)
        return GroupRef(group, state.widths[group])  # type: ignore[arg-type]  # closed: a width
    if len(escape) == 2 and c not in _ASCIILETTERS:
        return Char(ord(escape[1]))
    raise _Error("bad escape")


def _uniq(items: list[SetItem]) -> tuple[SetItem, ...]:
    return tuple(dict.fromkeys(items))


def _parse_sub(source: _Source, state: _State, verbose: bool, nested: int) -> list[Node]:
    """An alternation: a|b|c."""
    items: list[list[Node]] = []
    while True:
        items.append(_parse(source, state, verbose, nested + 1, not nested and not items))
        if not source.match("|"):
            break
        if not nested:
            verbose = bool(state.flags & Flag.VERBOSE)
    if len(items) == 1:
        return items[0]
    out: list[Node] = []
    while True:  # a simple node every alternative starts with moves in front
        first = items[0][0] if items[0] else None
        if not isinstance(first, _SIMPLE) or not all(item and item[0] == first for item in items):
            break
        for item in items:
            del item[0]
        out.append(first)
    members: list[SetItem] = []
    for item in items:  # alternatives of one character each become one set
        if len(item) != 1:
            break
        node = item[0]
        if isinstance(node, Char):
            members.append(node)
        elif isinstance(node, Set) and not node.negate:
            members.extend(node.members)
        else:
            break
    else:
        out.append(Set(_uniq(members)))
        return out
    out.append(Branch(tuple(tuple(item) for item in items)))
    return out


def _parse_class(source: _Source) -> Node:
    members: list[SetItem] = []
    negate = source.match("^")
    while True:
        this = source.get()
        if this is None:
            raise _Error("unterminated character set")
        if this == "]" and members:
            break
        code1: Char | Category = _class_escape(source, this) if this[0] == "\\" else Char(ord(this))
        if source.match("-"):
            that = source.get()
            if that is None:
                raise _Error("unterminated character set")
            if that == "]":
                members += [code1, Char(ord("-"))]
                break
            code2 = _class_escape(source, that) if that[0] == "\\" else Char(ord(that))
            if not isinstance(code1, Char) or not isinstance(code2, Char) or code2.code < code1.code:
                raise _Error("bad character range")
            members.append(Range(code1.code, code2.code))
        else:
            members.append(code1)
    unique = _uniq(members)
    if len(unique) == 1 and isinstance(unique[0], Char):
        return NotChar(unique[0].code) if negate else unique[0]
    return Set(unique, negate)


def _parse_count(source: _Source) -> tuple[int, int] | None:
    """`{m}`, `{m,}`, `{,n}`, `{m,n}` after the `{`; None when it is no count (a literal `{`)."""
    lo = hi = ""
    while source.next in _DIGITS:
        lo += source.get()  # type: ignore[operator]  # a digit
    if source.match(","):
        while source.next in _DIGITS:
            hi += source.get()  # type: ignore[operator]  # a digit
    else:
        hi = lo
    if not source.match("}"):
        return None
    low, high = int(lo) if lo else 0, int(hi) if hi else MAXREPEAT
    if low >= MAXREPEAT or (hi and high >= MAXREPEAT):
        raise _Error("the repetition number is too large")
    if high < low:
        raise _Error("min repeat greater than max repeat")
    return low, high


def _parse_flags(source: _Source, state: _State, char: str) -> tuple[Flag, Flag] | None:
    """Inline flags after `(?`: None for global ones `(?i)`, else (added, removed) of `(?i-s:...)`."""
    add = del_ = _NO_FLAGS
    c: str | None = char
    if c != "-":
        while True:
            flag = _FLAGS[c]  # type: ignore[index]  # a flag letter
            if c == "L":
                raise _Error("cannot use 'L' flag with a str pattern")
            add |= flag
            if flag & _TYPE_FLAGS and add & _TYPE_FLAGS != flag:
                raise _Error("flags 'a', 'u' and 'L' are incompatible")
            c = source.get()
            if c is None:
                raise _Error("missing -, : or )")
            if c in (")", "-", ":"):
                break
            if c not in _FLAGS:
                raise _Error("unknown flag")
    if c == ")":
        state.flags |= add
        return None
    if add & Flag.TEMPLATE:
        raise _Error("cannot turn on global flag")
    if c == "-":
        c = source.get()
        if c is None or c not in _FLAGS:
            raise _Error("missing flag")
        while True:
            flag = _FLAGS[c]
            if flag & _TYPE_FLAGS:
                raise _Error("cannot turn off flags 'a', 'u' and 'L'")
            del_ |= flag
            c = source.get()
            if c is None:
                raise _Error("missing :")
            if c == ":":
                break
            if c not in _FLAGS:
                raise _Error("unknown flag")
    if del_ & Flag.TEMPLATE:
        raise _Error("cannot turn off global flag")
    if add & del_:
        raise _Error("flag turned on and off")
    return add, del_


def _parse_group(source: _Source, state: _State, verbose: bool, nested: int, first: bool,
                 out: list[Node]) -> bool:
    """After `(`: appends the group's node to `out`. False for global flags (verbose may change)."""
    capture = True
    atomic = False
    name = None
    add = del_ = _NO_FLAGS
    if source.match("?"):
        char = source.get()
        if char is None:
            raise _Error("unexpected end of pattern")
        if char == "P":
            if source.match("="):
                out.append(_named_backref(source, state))
                return True
            if not source.match("<"):
                raise _Error("unknown extension ?P")
            name = source.getuntil(">")
            _check_name(name)
        elif char == ":":
            capture = False
        elif char == "#":
            _skip_comment(source)
            return True
        elif char in ("=", "!", "<"):
            out.append(_lookaround(source, state, verbose, nested, char))
            return True
        elif char == "(":
            out.append(_conditional(source, state, verbose, nested))
            return True
        elif char == ">":
            capture = False
            atomic = True
        elif char in _FLAGS or char == "-":
            flags = _parse_flags(source, state, char)
            if flags is None:
                if not first or out:
                    raise _Error("global flags not at the start of the expression")
                return False
            add, del_ = flags
            capture = False
        else:
            raise _Error("unknown extension")
    group = state.opengroup(name) if capture else None
    sub_verbose = (verbose or bool(add & Flag.VERBOSE)) and not del_ & Flag.VERBOSE
    p = _parse_sub(source, state, sub_verbose, nested + 1)
    if not source.match(")"):
        raise _Error("missing ), unterminated subpattern")
    if group is not None:
        state.widths[group] = min_width(p)
    out.append(Atomic(tuple(p)) if atomic else Group(group, add, del_, tuple(p)))
    return True


def _named_backref(source: _Source, state: _State) -> GroupRef:
    """After `(?P=`: the back-reference to a named group, closed before it."""
    name = source.getuntil(")")
    _check_name(name)
    gid = state.names.get(name)
    if gid is None or not state.checkgroup(gid):
        raise _Error("unknown or open group")
    state.checklookbehind(gid)
    return GroupRef(gid, state.widths[gid])  # type: ignore[arg-type]  # closed: a width


def _skip_comment(source: _Source) -> None:
    """After `(?#`: up to and with the closing `)`."""
    while True:
        if source.next is None:
            raise _Error("missing ), unterminated comment")
        if source.get() == ")":
            return


def _lookaround(source: _Source, state: _State, verbose: bool, nested: int, char: str) -> Assert:
    """After `(?=`, `(?!` or `(?<`: the assertion, to its `)`."""
    behind = char == "<"
    outer = state.lookbehind
    if behind:
        after = source.get()
        if after not in ("=", "!"):
            raise _Error("unknown extension ?<")
        char = after
        if outer is None:
            state.lookbehind = state.groups
    p = _parse_sub(source, state, verbose, nested + 1)
    if behind and outer is None:
        state.lookbehind = None
    if not source.match(")"):
        raise _Error("missing ), unterminated subpattern")
    return Assert(behind, char == "!", tuple(p))


def _conditional(source: _Source, state: _State, verbose: bool, nested: int) -> GroupRefExists:
    """After `(?(`: `(?(group)yes|no)`, to its `)`."""
    condname = source.getuntil(")")
    if condname.isidentifier():
        cond = state.names.get(condname)
        if cond is None:
            raise _Error("unknown group name")
    else:
        # CPython also takes non-ASCII digits here, with a DeprecationWarning: refused
        if not (condname.isdecimal() and condname.isascii()) or not int(condname):
            raise _Error("bad group number")
        cond = int(condname)
        state.condrefs.add(cond)
    state.checklookbehind(cond)
    yes = _parse(source, state, verbose, nested + 1)
    no = None
    if source.match("|"):
        no = _parse(source, state, verbose, nested + 1)
        if source.next == "|":
            raise _Error("conditional backref with more than two branches")
    if not source.match(")"):
        raise _Error("missing ), unterminated subpattern")
    return GroupRefExists(cond, tuple(yes), None if no is None else tuple(no))


def _parse(source: _Source, state: _State, verbose: bool, nested: int, first: bool = False) -> list[Node]:
    """A sequence, up to `|`, `)` or the end."""
    out: list[Node] = []
    while True:
        this = source.next
        if this is None or this in ("|", ")"):
            break
        source.get()
        if verbose:
            if this in _WHITESPACE:
                continue
            if this == "#":
                while this is not None and this != "\n":
                    this = source.get()
                continue
        if this[0] == "\\":
            out.append(_escape(source, this, state))
        elif this not in _SPECIAL:
            out.append(Char(ord(this)))
        elif this == "[":
            out.append(_parse_class(source))
        elif this in _REPEAT_CHARS:
            _repeat(source, this, out)
        elif this == ".":
            out.append(AnyChar())
        elif this == "(":
            if not _parse_group(source, state, verbose, nested, first, out):
                verbose = bool(state.flags & Flag.VERBOSE)
        elif this == "^":
            out.append(At.BEGINNING)
        elif this == "$":
            out.append(At.END)
    return _spliced(out)


def _repeat(source: _Source, this: str, out: list[Node]) -> None:
    """After `?`, `*`, `+` or `{`: the last node of `out` becomes its repeat (a `{` that opens no
    count is a literal `{`)."""
    if this == "{":
        if source.next == "}":
            out.append(Char(ord("{")))
            return
        here = source.tell()
        count = _parse_count(source)
        if count is None:
            out.append(Char(ord("{")))
            source.seek(here)
            return
        lo, hi = count
    else:
        lo, hi = {"?": (0, 1), "*": (0, MAXREPEAT), "+": (1, MAXREPEAT)}[this]
    if not out or isinstance(out[-1], At):
        raise _Error("nothing to repeat")
    item = out[-1]
    if isinstance(item, Repeat):
        raise _Error("multiple repeat")
    items = (item.items if isinstance(item, Group) and item.index is None and not item.add_flags
             and not item.del_flags else (item,))
    kind = (RepeatKind.LAZY if source.match("?") else
            RepeatKind.POSSESSIVE if source.match("+") else RepeatKind.GREEDY)
    out[-1] = Repeat(lo, None if hi == MAXREPEAT else hi, items, kind)


def _spliced(out: list[Node]) -> list[Node]:
    """A group that neither captures nor changes flags is spliced into its sequence."""
    spliced: list[Node] = []
    for node in out:
        if isinstance(node, Group) and node.index is None and not node.add_flags and not node.del_flags:
            spliced.extend(node.items)
        else:
            spliced.append(node)
    return spliced


def parse(pattern: str) -> Parsed | None:
    """The tree `re` builds for `pattern`, or None where `re.compile` would raise."""
    try:
        source = _Source(pattern)
        state = _State()
        items = _parse_sub(source, state, False, 0)
        if source.next is not None:
            raise _Error("unbalanced parenthesis")
        if any(g >= state.groups for g in state.condrefs):
            raise _Error("invalid group reference")
    except (_Error, RecursionError):
        return None
    flags = state.flags if state.flags & Flag.ASCII else state.flags | Flag.UNICODE
    return Parsed(tuple(items), flags)
