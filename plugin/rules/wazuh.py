"""Wazuh XML rules -> model: `<field>`, `<regex>`, `<match>` on the mapped field, level, MITRE ids."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat
from pathlib import Path

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import Expr, Not, Op, Predicate, all_of
from shellsieve.model.fields import wazuh_field
from shellsieve.model.rule import Rule, Threat
from shellsieve.rules.attack import from_id
from shellsieve.rules.positions import parse_xml_with_lines, xml_text
from shellsieve.rules.source import RuleFileError, read_rule_file
from shellsieve.model.severity import wazuh_severity

__all__ = ["load_wazuh", "osregex_to_pcre", "osmatch_to_pcre"]

# Elements that only describe the rule, or that shellsieve's single-event model honours as is.
_DESCRIPTIVE = {"description", "mitre", "group", "info", "options", "list"}
# Elements that make a rule depend on Wazuh's decoders or on other rules' state. Running the rule
# without them would widen what it matches, so such a rule is reported, not run.
_DEPENDENT = {
    "if_sid", "if_group", "if_level", "if_matched_sid", "if_matched_group", "decoded_as",
    "category", "frequency", "timeframe", "same_source_ip", "same_user", "different_url",
    "program_name", "hostname", "srcip", "dstip", "user", "url", "id", "status", "action",
    "location", "weekday", "time", "srcport", "dstport", "protocol", "system_name", "data",
    "extra_data", "check_diff", "same_field", "not_same_field", "field_list",
}

# OS_Regex escapes (Wazuh/OSSEC regex syntax) -> PCRE classes.
_OSREGEX_ESCAPES = {
    "w": r"[A-Za-z0-9@_\-]",
    "d": r"[0-9]",
    "s": r" ",
    "t": r"\t",
    "p": r"""[()*+,\-.:;<=>?\[\]!"'#$%&|{}]""",
    "W": r"[^A-Za-z0-9@_\-]",
    "D": r"[^0-9]",
    "S": r"[^ ]",
    ".": r"[\s\S]",
    "$": r"\$", "(": r"\(", ")": r"\)", "\\": r"\\\\", "|": r"\|",
}


def osregex_to_pcre(pattern: str) -> str:
    """Translate OS_Regex (Wazuh's legacy `<regex>` syntax) to PCRE, token by token."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in _OSREGEX_ESCAPES:
                raise UnsupportedError(pattern[i : i + 2], f"unknown OS_Regex escape {pattern[i:i+2]!r}")
            out.append(_OSREGEX_ESCAPES[pattern[i + 1]])
            i += 2
            continue
        if c in "+*^$|()":
            out.append(c)
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def osmatch_to_pcre(pattern: str) -> str:
    """Translate OS_Match (`<match>`): literal text, `^`/`$` anchors, `|` alternatives."""
    alts = []
    for alt in pattern.split("|"):
        start = alt.startswith("^")
        end = alt.endswith("$") and len(alt) > int(start)
        core = alt[int(start) : len(alt) - int(end)]
        alts.append(("^" if start else "") + re.escape(core) + ("$" if end else ""))
    return "|".join(alts)


def _regex_predicate(elem: ET.Element, field_name: str, loc: Location) -> Expr:
    """One `<field>`, `<regex>` or `<match>` element -> a REGEX predicate on the mapped ECS field."""
    field = wazuh_field(field_name)
    if field is None:
        raise UnsupportedError(f'<field name="{field_name}">', f"no ECS mapping for Wazuh field {field_name!r}")
    text = (elem.text or "").strip()
    if not text:
        raise UnsupportedError(f"<{elem.tag}>", "empty pattern")
    kind = elem.get("type") or ("osmatch" if elem.tag == "match" else "osregex")
    if kind == "pcre2":
        # PCRE2 as written: case-sensitive unless the pattern says (?i); (?s) likewise inline.
        pattern, case_sensitive = text, True
    elif kind in ("osregex", "regex"):
        pattern, case_sensitive = osregex_to_pcre(text), False  # OS_Regex ignores case
    elif kind in ("osmatch", "sregex"):
        negate = text.startswith("!")
        pattern, case_sensitive = osmatch_to_pcre(text[1:] if negate else text), False
        pred = Predicate(field, Op.REGEX, (pattern,), case_sensitive, loc)
        return Not(pred) if negate else pred
    else:
        raise UnsupportedError(f'type="{kind}"', f"unknown regex type {kind!r}")
    pred = Predicate(field, Op.REGEX, (pattern,), case_sensitive, loc)
    return Not(pred) if elem.get("negate") == "yes" else pred


def _translate(rule_el: ET.Element, path: str, lines: dict[int, int], groups: list[str]) -> Rule:
    rid = rule_el.get("id")
    level = rule_el.get("level")
    loc = Location(path, lines.get(id(rule_el), 0))
    if not rid or level is None:
        raise UnsupportedError("<rule>", "a rule needs both id and level attributes")
    terms: list[Expr] = []
    threats: list[Threat] = []
    description = ""
    for child in rule_el:
        cloc = Location(path, lines.get(id(child), 0))
        if child.tag == "description":
            description = (child.text or "").strip()
        elif child.tag == "mitre":
            threats.extend(from_id(i.text) for i in child.findall("id") if i.text and i.text.strip())
        elif child.tag == "field":
            terms.append(_regex_predicate(child, child.get("name", ""), cloc))
        elif child.tag in ("regex", "match"):
            # Without decoders the text Wazuh matches `<regex>`/`<match>` against is the full log.
            terms.append(_regex_predicate(child, "full_log", cloc))
        elif child.tag in _DEPENDENT:
            raise UnsupportedError(f"<{child.tag}>", f"<{child.tag}> needs Wazuh decoders or rule state")
        elif child.tag not in _DESCRIPTIVE:
            raise UnsupportedError(f"<{child.tag}>", f"unknown rule element <{child.tag}>")
    if not terms:
        raise UnsupportedError("<rule>", "rule has no <field>, <regex> or <match> condition")
    severity, risk = wazuh_severity(int(level))
    return Rule(
        id=rid, name=description or f"Wazuh rule {rid}", ruleset="wazuh", query=all_of(terms),
        location=loc, severity=severity, risk_score=risk, level=level, threats=tuple(threats),
        description=description, language="wazuh", group="wazuh", category=",".join(_groups(rule_el, groups)),
    )


def _groups(rule_el: ET.Element, enclosing: list[str]) -> list[str]:
    """Wazuh's `rule.groups`: the enclosing <group name="a,b,"> names, then the rule's own <group>."""
    own = [g.strip() for el in rule_el.findall("group") for g in (el.text or "").split(",") if g.strip()]
    return list(dict.fromkeys([*enclosing, *own]))


# Top-level elements of a Wazuh rule file other than <group>: variables (`<var name="X">`).
_TOP_LEVEL = {"group", "var"}


def load_wazuh(path: Path, data: bytes | None = None) -> tuple[list[Rule], list[Diagnostic]]:
    """Every `<rule>` of every `<group>` in one Wazuh XML file (`data`: its bytes, if already read)."""
    rules: list[Rule] = []
    diags: list[Diagnostic] = []
    try:
        root, lines = parse_xml_with_lines(xml_text(read_rule_file(path) if data is None else data))
    except (expat.ExpatError, UnicodeDecodeError, LookupError, RuleFileError) as exc:
        line = getattr(exc, "lineno", 0)
        diags.append(Diagnostic(Code.PARSE, "error", Location(str(path), line), None, "", str(exc)))
        return rules, diags
    for top in root:
        if top.tag not in _TOP_LEVEL:
            # Wazuh reads rules only inside a <group>: one outside it would be silently lost
            diags.append(Diagnostic(Code.SCHEMA, "error", Location(str(path), lines.get(id(top), 0)),
                                    top.get("id") if top.tag == "rule" else None, f"<{top.tag}>",
                                    f"top-level <{top.tag}> outside a <group> is not read"))
    for group in root.iter("group"):
        names = [g for g in (group.get("name") or "").split(",") if g]
        for rule_el in group.findall("rule"):
            try:
                rules.append(_translate(rule_el, str(path), lines, names))
            except (UnsupportedError, ValueError) as exc:
                construct = getattr(exc, "construct", "")
                diags.append(Diagnostic(
                    Code.UNSUPPORTED_CONSTRUCT, "error", Location(str(path), lines.get(id(rule_el), 0)),
                    rule_el.get("id"), construct, str(exc),
                ))
    return rules, diags
