"""Locations and diagnostics: every problem with a rule names file, line, rule id and construct."""

from __future__ import annotations

import enum
import re

import msgspec

__all__ = ["Location", "Code", "Diagnostic", "printable"]

# What a terminal acts on instead of showing: C0 controls (ESC starts colour, title and OSC 8
# hyperlink sequences; CR rewrites the line), DEL, C1 controls (0x9b is a one-byte CSI), and the
# bidirectional overrides and isolates that reorder what follows them ("Trojan Source"); lone
# surrogates cannot even be written as UTF-8. Rule text is written by whoever wrote the rule file.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """`text` with every control character escaped (`\\x1b`, `\\u202e`), safe to write to a terminal."""
    return _UNPRINTABLE.sub(_escape, text)


class Location(msgspec.Struct, frozen=True):
    path: str
    line: int = 0  # 1-based; 0 when the source gives no line
    col: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}" if self.line else self.path


class Code(enum.Enum):
    """Diagnostic codes: (code, title, help) in one place."""

    # what each member's value holds (a trailing True: `strict`, below); types `.value` for mypy
    _value_: tuple[str, str, str] | tuple[str, str, str, bool]

    PARSE = ("SS101", "cannot parse rule file", "fix the syntax of the file")
    SCHEMA = ("SS102", "rule is missing a required part", "add the missing key or element")
    UNSUPPORTED_TYPE = ("SS201", "unsupported rule type", "this rule type is not run by shellsieve")
    UNSUPPORTED_CONSTRUCT = ("SS202", "unsupported construct", "rewrite the rule without it, or leave it skipped")
    REGEX = ("SS203", "regex cannot be compiled faithfully", "simplify the regex")
    HYPERSCAN = ("SS204", "Hyperscan rejected a pattern", "simplify the pattern")
    COSTLY = ("SS205", "pattern too costly to compile", "shorten the pattern or lower its repeat counts")
    # A Sigma correlation or filter (docs/correlation.md) naming a rule id or `name` that is not loaded.
    UNKNOWN_REFERENCE = ("SS206", "correlation or filter names no loaded rule",
                         "load the file of the referenced rule, or fix the id or name")
    # The three below are warnings that --strict turns into errors (`strict`): the rule runs, but it
    # cannot be trusted to stay quiet or cheap on ordinary events.
    NO_ANCHOR = ("SS301", "rule has no prefilter anchor and runs on every event", "add a text or equality condition",
                 True)
    DUPLICATE_ID = ("SS302", "duplicate rule id", "give each rule its own id")
    # Two files with one rule id (a shipped copy beside the public collection, two checkouts of a
    # collection): one rule, the newer copy runs. Not an error: this is how a collection updates.
    REPLACED = ("SS305", "another copy of this rule id replaces this one",
                "remove the older copy, or give a changed rule its own id")
    MATCHES_EMPTY = ("SS303", "pattern matches the empty string, so any value",
                     "make the pattern need at least one character, or test that the field exists", True)
    NOISY_ANCHOR = ("SS304", "anchor fires on most benign events", "add a more selective text condition", True)
    # Rule selection (--include-rule, --exclude-rule, --tag): an id or tag that names no loaded rule
    # is a typo or a rule that failed to load; the filter refuses to start with it.
    UNKNOWN_RULE = ("SS401", "selected rule id or tag names no loaded rule",
                    "list the loaded ids with `shellsieve check`")
    # Exceptions files (--exceptions, docs/exceptions.md): an entry with an error is not applied, and
    # run/serve refuse to start with it; an expired entry is skipped with a warning.
    EXC_PARSE = ("SS501", "cannot parse exceptions file", "fix the YAML: a list of exception entries")
    EXC_SCHEMA = ("SS502", "exception entry is malformed", "see docs/exceptions.md for the format")
    EXC_VALUE = ("SS503", "exception value is invalid", "fix the CIDR, glob or date")
    EXC_UNKNOWN_RULE = ("SS504", "exception names no running rule", "list the running ids with `shellsieve check`")
    EXC_UNKNOWN_FIELD = ("SS505", "exception reads a field the engine cannot read",
                         "use an ECS field the input formats fill or a loaded rule reads")
    EXC_EXPIRED = ("SS506", "exception expired and is no longer applied", "renew its date or remove it")

    @property
    def code(self) -> str:
        return self._value_[0]

    @property
    def title(self) -> str:
        return self._value_[1]

    @property
    def help(self) -> str:
        return self._value_[2]

    @property
    def strict(self) -> bool:
        """A warning of this code is an error under --strict."""
        return len(self._value_) > 3 and bool(self._value_[3])


class Diagnostic(msgspec.Struct, frozen=True):
    code: Code
    # "error": rule skipped; "unsupported": a rule type shellsieve does not run (skipped, not an
    # error under --strict); "warning": the rule runs; "info": nothing lost (an identical copy, an
    # older version replaced by a newer one)
    severity: str
    location: Location
    rule_id: str | None
    construct: str  # the offending construct, quoted from the source where possible
    message: str
    group: str = ""  # what coverage is counted by: "eql", "kuery new_terms", "linux/auditd" ...

    def render(self) -> str:
        """`path:line:col: error[SS202] rule X: message [construct]`, one line with control characters
        escaped (rule ids, messages and constructs quote rule files, which may hold any byte)."""
        rid = f" rule {self.rule_id}:" if self.rule_id else ""
        construct = f" [{self.construct}]" if self.construct else ""
        return printable(f"{self.location}: {self.severity}[{self.code.code}]{rid} {self.message}{construct}")

    def fatal(self, strict: bool) -> bool:
        """Does this diagnostic stop `check --strict` / `run --strict` (or is it an error anyway)?"""
        return self.severity == "error" or (strict and self.severity == "warning" and self.code.strict)

    def under(self, strict: bool) -> Diagnostic:
        """As reported under --strict: a warning of a strict code becomes an error."""
        return msgspec.structs.replace(self, severity="error") if strict and self.fatal(strict) else self

    def to_builtins(self) -> dict[str, object]:
        return {
            "code": self.code.code,
            "severity": self.severity,
            "path": self.location.path,
            "line": self.location.line,
            "rule_id": self.rule_id,
            "construct": self.construct,
            "message": self.message,
            "group": self.group,
        }
