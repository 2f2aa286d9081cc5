"""Patterns too costly to compile are refused before Hyperscan sees them, naming the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from shellsieve.compile.ruleset import compile_rules
from shellsieve.rules.wazuh import load_wazuh


def _compile(tmp_path: Path, *patterns: str) -> tuple[list[str], list]:
    body = "".join(f'<rule id="{i}" level="5"><field name="full_log" type="pcre2">{p}</field></rule>\n'
                   for i, p in enumerate(patterns, start=1))
    f = tmp_path / "r.xml"
    f.write_text(f'<group name="g,">\n{body}</group>\n')
    rules, diags = load_wazuh(f)
    assert diags == []
    ruleset, cdiags = compile_rules(rules)
    return [cr.rule.id for cr in ruleset.rules], cdiags


class TestCostBound:
    @pytest.mark.parametrize("pattern", ["a{1001}", "((a{50}){50}){8}", "(?:ab|cd){3000}x", "nc -e " + "x" * 4100,
                                         "[[:alpha:]]{40}{40}"])
    def test_costly_pattern_is_an_error_naming_the_rule(self, tmp_path: Path, pattern: str) -> None:
        """A regex whose unrolled repeats or length pass the bounds is skipped with SS205 (the nested one
        took 16.8 s to compile alone); the other rule of the file still loads."""
        loaded, diags = _compile(tmp_path, "nc -e /bin/sh", pattern)
        assert loaded == ["1"]
        (d,) = [d for d in diags if d.severity == "error"]
        assert d.code.code == "SS205" and d.rule_id == "2" and d.location.line == 3

    @pytest.mark.parametrize("pattern", ["a{999}x", "((a{10}){10}){10}", r"(?:\d{1,3}\.){3}\d{1,3}:\d{1,5}",
                                         "(.){200,}"])
    def test_patterns_within_bounds_load(self, tmp_path: Path, pattern: str) -> None:
        """Counted repeats up to the bound compile as before."""
        loaded, diags = _compile(tmp_path, pattern)
        assert loaded == ["1"] and not [d for d in diags if d.severity == "error"]
