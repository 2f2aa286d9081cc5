"""Sigma loader: pySigma's modifiers and conditions into the model, with precise diagnostics."""

from __future__ import annotations

from pathlib import Path

from conftest import PATTERNS, WEBSHELL_RECON, rule_ids, run_events
from shellsieve.compile.ruleset import compile_rules
from shellsieve.model.expr import AllOf, AnyOf, Not, Op, Predicate
from shellsieve.rules.sigma import load_sigma

HEADER = "title: t\nid: 11111111-2222-3333-4444-555555555555\nlogsource: {category: process_creation, product: linux}\n"


def _rule(tmp_path: Path, detection: str):  # type: ignore[no-untyped-def]
    f = tmp_path / "r.yml"
    f.write_text(HEADER + "detection:\n" + detection + "level: medium\n")
    rules, diags = load_sigma(f)
    return rules, diags


def _fires(tmp_path: Path, detection: str, event: dict) -> bool:  # type: ignore[type-arg]
    rules, diags = _rule(tmp_path, detection)
    assert not diags, [d.render() for d in diags]
    ruleset, _ = compile_rules(rules)
    return rule_ids(run_events(ruleset, [event])[0]) == [rules[0].id]


class TestShipped:
    def test_seed_rule(self) -> None:
        """Seed 004 loads as (1 of three web-server selections) and recon, on ECS fields, level high."""
        (rule,), diags = load_sigma(PATTERNS / "sigma" / "webshell_tool_recon.yml")
        assert not diags and rule.id == WEBSHELL_RECON and rule.severity == "high" and rule.risk_score == 73
        q = rule.query
        assert isinstance(q, AllOf) and isinstance(q.terms[0], AnyOf)
        recon = q.terms[1]
        assert isinstance(recon, AnyOf) and all(
            isinstance(t, Predicate) and t.field == "process.command_line" and t.op is Op.CONTAINS
            and not t.case_sensitive for t in recon.terms)
        assert [(t.tactic_id, t.technique_id) for t in rule.threats] == [("TA0003", None), (None, "T1505.003")]


class TestModifiers:
    def test_contains_all(self, tmp_path: Path) -> None:
        """contains|all needs every value."""
        det = "  sel:\n    CommandLine|contains|all: ['curl', '| sh']\n  condition: sel\n"
        assert _fires(tmp_path, det, {"process": {"command_line": "curl x | sh"}})
        assert not _fires(tmp_path, det, {"process": {"command_line": "curl x"}})

    def test_windash(self, tmp_path: Path) -> None:
        """windash matches - and / forms."""
        det = "  sel:\n    CommandLine|windash|contains: ' -enc '\n  condition: sel\n"
        assert _fires(tmp_path, det, {"process": {"command_line": "powershell /enc AAA"}})

    def test_re_with_i(self, tmp_path: Path) -> None:
        """re is a search; re|i ignores case."""
        det = "  sel:\n    CommandLine|re|i: 'nc\\s+-e'\n  condition: sel\n"
        assert _fires(tmp_path, det, {"process": {"command_line": "x NC  -e /bin/sh"}})

    def test_cidr_exists_null_numbers(self, tmp_path: Path) -> None:
        """cidr, exists, null and numbers keep their meaning."""
        det = ("  sel:\n    DestinationIp|cidr: '10.0.0.0/8'\n    DestinationPort: 4444\n"
               "    User|exists: true\n    ParentUser: null\n  condition: sel\n")
        ev = {"destination": {"ip": "10.2.3.4", "port": 4444}, "user": {"name": "x"}}
        assert _fires(tmp_path, det, ev)
        assert not _fires(tmp_path, det, {**ev, "destination": {"ip": "11.0.0.1", "port": 4444}})

    def test_wildcards_plain_values(self, tmp_path: Path) -> None:
        """Plain values are case-insensitive whole-value matches with * and ?."""
        det = "  sel:\n    Image: '*\\b?sh'\n  condition: sel\n"
        assert _fires(tmp_path, det, {"process": {"executable": "C:\\X\\BASH"}})
        assert not _fires(tmp_path, det, {"process": {"executable": "C:\\X\\bash.exe"}})

    def test_conditions(self, tmp_path: Path) -> None:
        """`1 of sel*`, `all of them` style and `not` conditions."""
        det = ("  sel_a:\n    Image|endswith: '/nc'\n  sel_b:\n    Image|endswith: '/ncat'\n"
               "  filter:\n    User: root\n  condition: 1 of sel_* and not filter\n")
        rules, _ = _rule(tmp_path, det)
        q = rules[0].query
        assert isinstance(q, AllOf) and isinstance(q.terms[1], Not)
        assert _fires(tmp_path, det, {"process": {"executable": "/bin/ncat"}, "user": {"name": "bob"}})
        assert not _fires(tmp_path, det, {"process": {"executable": "/bin/ncat"}, "user": {"name": "ROOT"}})


class TestDiagnostics:
    def test_broken_yaml(self, tmp_path: Path) -> None:
        """Unparseable YAML is one diagnostic naming the file."""
        f = tmp_path / "bad.yml"
        f.write_text("title: [unclosed\n")
        rules, diags = load_sigma(f)
        assert rules == [] and len(diags) == 1 and str(f) in diags[0].render()

    def test_unknown_modifier_names_rule(self, tmp_path: Path) -> None:
        """An unknown modifier is reported with the rule id; the rule is skipped."""
        rules, diags = _rule(tmp_path, "  sel:\n    Image|bogusmod: x\n  condition: sel\n")
        assert rules == [] and diags[0].rule_id == "11111111-2222-3333-4444-555555555555"

    def test_keywords_are_refused(self, tmp_path: Path) -> None:
        """Field-less keyword detections are reported, not run with another meaning."""
        rules, diags = _rule(tmp_path, "  keywords:\n    - 'evil'\n  condition: keywords\n")
        assert rules == [] and diags[0].construct == "keywords"
