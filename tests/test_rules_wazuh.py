"""Wazuh XML loader: elements, regex types, levels, MITRE ids, and precise diagnostics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import PATTERNS
from shellsieve.model.expr import AllOf, Not, Op, Predicate
from shellsieve.rules.wazuh import load_wazuh, osmatch_to_pcre, osregex_to_pcre


def _load(tmp_path: Path, body: str) -> tuple[list, list]:
    f = tmp_path / "r.xml"
    f.write_text(body)
    return load_wazuh(f)


class TestShippedWazuh:
    def test_seed_rules_load_with_level_and_mitre(self) -> None:
        """Rules 100103 (level 15) and 100620 (level 12) load with their MITRE ids and line numbers."""
        rules, diags = load_wazuh(PATTERNS / "wazuh" / "reverse_shells.xml")
        assert diags == []
        by_id = {r.id: r for r in rules}
        assert by_id["100103"].level == "15" and by_id["100103"].severity == "critical"
        assert by_id["100620"].level == "12" and by_id["100620"].severity == "high"
        assert [t.subtechnique_id or t.technique_id for t in by_id["100103"].threats] == [
            "T1059.004", "T1059.006", "T1219", "T1105"]
        assert [(t.technique_id, t.subtechnique_id) for t in by_id["100620"].threats] == [
            ("T1059", "T1059.006"), ("T1105", None)]
        assert by_id["100620"].threats[0].subtechnique_name == "Python"
        assert by_id["100620"].threats[1].technique_name == "Ingress Tool Transfer"
        assert by_id["100620"].category and by_id["100620"].uuid == ""
        q = by_id["100620"].query
        assert isinstance(q, Predicate) and q.field == "process.command_line" and q.op is Op.REGEX
        assert q.values[0].startswith("(?is)") and q.case_sensitive
        assert by_id["100103"].location.line > 0


class TestElements:
    def test_field_regex_match_all_required(self, tmp_path: Path) -> None:
        """Several conditions of one rule must all hold (AND), each on its mapped field."""
        rules, diags = _load(tmp_path, '<group name="g,"><rule id="1" level="5">'
                             '<field name="data.audit.execve.a0" type="pcre2">^nc$</field>'
                             '<match>-e /bin/sh</match></rule></group>')
        assert diags == []
        q = rules[0].query
        assert isinstance(q, AllOf)
        assert [t.field for t in q.terms] == ["process.args.0", "process.command_line"]

    def test_negate(self, tmp_path: Path) -> None:
        """negate="yes" and a leading `!` in <match> invert the condition."""
        rules, _ = _load(tmp_path, '<group name="g,"><rule id="1" level="5">'
                         '<field name="full_log" type="pcre2" negate="yes">x</field>'
                         '<match>!y</match></rule></group>')
        q = rules[0].query
        assert isinstance(q, AllOf) and all(isinstance(t, Not) for t in q.terms)

    def test_mitre_tactic_and_technique_ids(self, tmp_path: Path) -> None:
        """A <mitre><id> may be a tactic (TA0002) or a technique: each lands in its own field, named."""
        rules, diags = _load(tmp_path, '<group name="g,"><rule id="1" level="5"><match>nc</match>'
                                       '<mitre><id>TA0002</id><id> t1105 </id><id></id></mitre></rule></group>')
        assert diags == []
        tactic, tech = rules[0].threats
        assert (tactic.tactic_id, tactic.tactic_name, tactic.technique_id) == ("TA0002", "Execution", None)
        assert (tech.technique_id, tech.technique_name) == ("T1105", "Ingress Tool Transfer")

    @pytest.mark.parametrize(
        ("element", "construct"),
        [("<if_sid>5710</if_sid>", "<if_sid>"), ("<decoded_as>json</decoded_as>", "<decoded_as>"),
         ("<frequency>5</frequency>", "<frequency>"), ("<bogus>1</bogus>", "<bogus>"),
         ('<field name="nope.field" type="pcre2">x</field>', '<field name="nope.field">')],
    )
    def test_unsupported_element_is_reported(self, tmp_path: Path, element: str, construct: str) -> None:
        """A rule that depends on decoders, other rules or unknown fields is skipped with file, line, id, construct."""
        rules, diags = _load(tmp_path, f'<group name="g,">\n<rule id="77" level="5">\n{element}\n'
                                       f'<match>x</match>\n</rule>\n</group>')
        assert rules == []
        (d,) = diags
        assert d.rule_id == "77" and d.construct == construct and d.location.line == 2
        assert str(tmp_path / "r.xml") in d.render()

    def test_broken_xml_names_file_and_line(self, tmp_path: Path) -> None:
        """Malformed XML is one diagnostic with the file and the line, not an exception."""
        rules, diags = _load(tmp_path, '<group name="g,">\n<rule id="1" level="5">\n<match>x</rule>\n</group>')
        assert rules == [] and len(diags) == 1 and diags[0].location.line == 3


class TestFileShape:
    _RULE = ('<group name="g,">\n<rule id="9" level="5">\n'
             '<field name="data.audit.execve.a0" type="pcre2">^nc$</field>\n</rule>\n</group>\n')

    @pytest.mark.parametrize("decl", ['<?xml version="1.0"?>\n', '<?xml version="1.0" encoding="UTF-8"?>\n',
                                      '\ufeff<?xml version="1.0" encoding=\'utf-8\' standalone="yes"?>\n'])
    def test_xml_declaration_is_read(self, tmp_path: Path, decl: str) -> None:
        """A file that starts with an XML declaration loads its rules, at their own line numbers."""
        rules, diags = _load(tmp_path, decl + self._RULE)
        assert diags == [] and [r.id for r in rules] == ["9"]
        assert rules[0].location.line == 3

    def test_declared_encoding_is_honoured(self, tmp_path: Path) -> None:
        """A Latin-1 file that says so is decoded as Latin-1."""
        f = tmp_path / "r.xml"
        f.write_bytes(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n' + self._RULE.replace(
            "</field>", "</field><description>caf\xe9</description>").encode("latin-1"))
        rules, diags = load_wazuh(f)
        assert diags == [] and rules[0].name == "caf\xe9"

    def test_unknown_encoding_is_a_diagnostic(self, tmp_path: Path) -> None:
        """An encoding Python does not know is a parse error of the file, not an exception."""
        rules, diags = _load(tmp_path, '<?xml version="1.0" encoding="nope-9"?>\n' + self._RULE)
        assert rules == [] and [d.code.code for d in diags] == ["SS101"]

    def test_rule_outside_group_is_an_error(self, tmp_path: Path) -> None:
        """A top-level <rule> (Wazuh reads rules only in a <group>) is an error naming its line and id."""
        rules, diags = _load(tmp_path, '<var name="X">y</var>\n<rule id="5" level="3"><match>nc</match></rule>\n')
        assert rules == []
        (d,) = diags
        assert d.severity == "error" and d.rule_id == "5" and d.location.line == 2 and d.construct == "<rule>"


class TestRegexTranslation:
    @pytest.mark.parametrize(
        ("osregex", "text", "hit"),
        [(r"^\d+\s\w+$", "123 abc", True), (r"^\d+\s\w+$", "123\tabc", False),
         (r"a\.b", "axb", True), (r"\(x\)", "(x)", True), (r"a|b\$", "b$", True), (r"\w+@", "a-b@", True)],
    )
    def test_osregex(self, osregex: str, text: str, hit: bool) -> None:
        """OS_Regex escapes keep Wazuh's meaning (\\s is a space only, \\. is any char)."""
        assert bool(re.search(osregex_to_pcre(osregex), text)) is hit

    @pytest.mark.parametrize(
        ("osmatch", "text", "hit"),
        [("^php -r", "php -r x", True), ("^php -r", "x php -r", False), ("fsock|sock$", "xsock", True),
         ("a.b", "axb", False), ("a.b", "a.b", True)],
    )
    def test_osmatch(self, osmatch: str, text: str, hit: bool) -> None:
        """OS_Match is literal text with ^, $ and | only."""
        assert bool(re.search(osmatch_to_pcre(osmatch), text)) is hit
