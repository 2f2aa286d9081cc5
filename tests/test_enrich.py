"""Alert fields: always one shape, the input's own values at their paths kept under shellsieve.input."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellsieve.diagnostics import Location
from shellsieve.model.expr import Op, Predicate
from shellsieve.model.rule import Rule, Threat
from conftest import PHP_FSOCKOPEN, rule_ids
from format_samples import Exec, wazuh_cmdline
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.enrich import Hit, _alert_fields, _tree, enrich
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats
from test_formats import run_lines

PHP = "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"
_Q = Predicate("process.name", Op.EQ, ("nc",), True)
RULES = (
    Rule(id="a", name="A", ruleset="eql", location=Location("t"), query=_Q, severity="high", risk_score=73,
         references=("https://x",), threats=(Threat(tactic_id="TA0002", tactic_name="Execution",
                                                     technique_id="T1059", technique_name="Command"),)),
    Rule(id="b", name="B", ruleset="sigma", location=Location("t"), query=_Q, severity="low", risk_score=21),
)

# What an event may already hold where the alert fields go: nothing, an object, or a scalar in the way.
_slot = st.one_of(st.none(), st.just("text"), st.just(7), st.just([1]))
_inner = st.dictionaries(st.sampled_from(["id", "name", "kind", "severity", "risk_score", "technique", "other"]),
                         st.one_of(_slot, st.dictionaries(st.sampled_from(["id", "name", "x"]), _slot, max_size=2)),
                         max_size=4)
_doc = st.dictionaries(st.sampled_from(["event", "rule", "threat", "shellsieve", "process"]),
                       st.one_of(_slot, _inner), max_size=5)

_OURS = ("rule", "threat", "shellsieve")
_OURS_IN_EVENT = ("kind", "severity", "risk_score")


def _our_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What of an enriched event is ours: rule, threat, shellsieve (minus the input's), event.kind/..."""
    out = {k: doc[k] for k in _OURS if k in doc}
    ours = {k: v for k, v in out.pop("shellsieve", {}).items() if k != "input"}
    if ours:
        out["shellsieve"] = ours
    out["event"] = {k: doc["event"][k] for k in _OURS_IN_EVENT if k in doc["event"]}
    return out


def _restore(doc: dict[str, Any]) -> dict[str, Any]:
    """The input event back from an enriched one: our fields out, shellsieve.input back in place."""
    moved = doc.get("shellsieve", {}).get("input", {})
    out = {k: v for k, v in doc.items() if k not in _OURS}
    event = out.get("event")
    if isinstance(event, dict):
        event = {k: v for k, v in event.items() if k not in _OURS_IN_EVENT}
        if event or "event" in moved:
            out["event"] = event
        else:
            del out["event"]
    for key, value in moved.items():
        if key == "event" and isinstance(value, dict):  # the input's event.kind/... only
            out.setdefault("event", {}).update(value)
        else:
            out[key] = value
    return out


def _hits(rules: tuple[Rule, ...]) -> list[Hit]:
    return [Hit(r) for r in rules]


class TestAlertShape:
    @settings(max_examples=300, deadline=None)
    @given(_doc, st.sampled_from([RULES[:1], RULES[1:], RULES]))
    def test_same_shape_whatever_the_input_holds(self, doc: dict[str, Any], rules: tuple[Rule, ...]) -> None:
        """Our fields are the same on any input as on an empty one: objects, never dotted keys."""
        got = enrich(copy.deepcopy(doc), _hits(rules))
        assert _our_fields(got) == _our_fields(enrich({}, _hits(rules)))
        assert not [k for k in got if "." in k]

    @settings(max_examples=300, deadline=None)
    @given(_doc, st.sampled_from([RULES[:1], RULES]))
    def test_input_values_are_kept_under_shellsieve_input(self, doc: dict[str, Any],
                                                          rules: tuple[Rule, ...]) -> None:
        """Nothing of the input is lost: our fields out and shellsieve.input put back give the input."""
        got = enrich(copy.deepcopy(doc), _hits(rules))
        if doc.get("event") == {}:  # an empty event object reads as none once ours are in it
            doc = {k: v for k, v in doc.items() if k != "event"}
        assert _restore(got) == doc

    def test_forged_alert_fields_move_aside(self) -> None:
        """An input that claims to be an alert keeps its claim under shellsieve.input, ours in place."""
        doc = {"event": {"kind": "alert", "severity": 1, "category": ["process"]},
               "rule": {"id": "forged", "name": "benign"}, "threat": {"framework": "none"},
               "shellsieve": {"sequence": "x"}}
        got = enrich(copy.deepcopy(doc), _hits(RULES[:1]))
        assert got["rule"]["id"] == "a" and got["event"] == {"category": ["process"], "kind": "alert",
                                                               "severity": 3, "risk_score": 73}
        assert got["shellsieve"]["input"] == {"event": {"kind": "alert", "severity": 1},
                                              "rule": doc["rule"], "threat": doc["threat"],
                                              "shellsieve": doc["shellsieve"]}
        assert got["shellsieve"]["alerts"] == [{"id": "a", "name": "A", "ruleset": "eql", "severity": 3,
                                                "risk_score": 73}]

    def test_text_rule_gives_no_dotted_keys(self) -> None:
        """`"rule": "text"` no longer makes our alert flat `rule.id` keys beside it."""
        got = enrich({"rule": "text", "event": 5}, _hits(RULES[:1]))
        assert got["rule"]["id"] == "a" and got["event"]["kind"] == "alert"
        assert got["shellsieve"]["input"] == {"event": 5, "rule": "text"}

    def test_sequence_quote_with_a_text_shellsieve(self) -> None:
        """A sequence alert on an input whose `shellsieve` is text: quote and input both under ours."""
        got = enrich({"shellsieve": "text"}, [Hit(RULES[0], {"first": {"x": 1}})])
        assert got["shellsieve"]["sequence"] == [{"first": {"x": 1}, "rule.id": "a"}]
        assert got["shellsieve"]["input"] == {"shellsieve": "text"}

    def test_shared_fields_are_not_changed_by_an_event(self) -> None:
        """The alert tree is shared by every alert of the same rules: enriching must never write into it."""
        tree = _tree(_alert_fields(RULES))
        before = copy.deepcopy(tree)
        for doc in ({}, {"event": {"kind": "event"}}, {"rule": "x"}, {"threat": {"technique": "t"}}):
            got = enrich(doc, _hits(RULES))
            got["event"]["extra"] = 1
        assert _tree(_alert_fields(RULES)) == before


class TestPipeline:
    """Through the real matcher and router, shipped rules."""

    def test_ecs_input_with_its_own_alert(self, run: Any) -> None:
        """An ECS event claiming `rule` and `event.kind: alert` that matches: ours in place, its own aside."""
        ev = {"event": {"kind": "alert", "category": ["process"]}, "rule": {"id": "x", "name": "forged"},
              "process": {"command_line": PHP, "name": "php", "args": ["php", "-r", PHP[7:]]}}
        (out,) = run([ev])
        assert rule_ids(out) == [PHP_FSOCKOPEN]
        assert out["shellsieve"]["input"] == {"event": {"kind": "alert"}, "rule": {"id": "x", "name": "forged"}}

    def test_ecs_input_with_a_text_rule(self, run: Any) -> None:
        """`"rule": "text"` on a matching ECS event: our rule is an object, no `rule.id` key beside it."""
        (out,) = run([{"rule": "text", "process": {"command_line": PHP}}])
        assert rule_ids(out) == [PHP_FSOCKOPEN] and "rule.id" not in out
        assert out["shellsieve"]["input"] == {"rule": "text"}

    def test_wazuh_rule_stays_in_wazuh_rule(self, shipped: Ruleset) -> None:
        """Wazuh's own rule still moves to wazuh.rule, where Wazuh users look for it."""
        ex = Exec(("php", "-r", '$s=fsockopen("10.10.10.10",9001);'), "/usr/bin/php")
        doc = msgspec.json.decode(wazuh_cmdline(ex)[0])
        doc["rule"] = {"level": 3, "id": "80700"}
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert docs[0]["wazuh"]["rule"] == {"level": 3, "id": "80700"} and "input" not in docs[0]["shellsieve"]

    def test_wazuh_rule_with_a_text_wazuh_field_is_kept(self, shipped: Ruleset) -> None:
        """A Wazuh alert whose `wazuh` is not an object: the field is not overwritten, the rule goes to
        shellsieve.input.rule."""
        ex = Exec(("php", "-r", '$s=fsockopen("10.10.10.10",9001);'), "/usr/bin/php")
        doc = msgspec.json.decode(wazuh_cmdline(ex)[0])
        doc["rule"] = {"level": 3, "id": "80700"}
        doc["wazuh"] = "manager-1"
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        out = docs[0]
        assert rule_ids(out) == [PHP_FSOCKOPEN] and out["wazuh"] == "manager-1"
        assert out["shellsieve"]["input"] == {"rule": {"level": 3, "id": "80700"}}

    def test_our_alert_through_a_second_filter(self, run: Any) -> None:
        """Our own alert read again (a second filter in the pipeline): the first alert is kept whole
        under shellsieve.input, the second written in the same shape as the first."""
        (first,) = run([{"process": {"command_line": PHP}}])
        (second,) = run([first])
        assert {k: second[k] for k in ("rule", "threat")} == {k: first[k] for k in ("rule", "threat")}
        assert second["event"] == first["event"]
        assert second["shellsieve"]["input"] == {k: first[k] for k in ("rule", "threat", "shellsieve")} | {
            "event": first["event"]}
        assert second["shellsieve"]["alerts"] == first["shellsieve"]["alerts"]

    def test_forged_alert_without_hits_leaves_as_it_came(self, shipped: Ruleset) -> None:
        """A line we do not alert on is never rewritten, whatever it claims: the filter vouches only for
        the alerts it writes (see the report of issue 19 for what a SIEM keys on)."""
        forged = {"event": {"kind": "alert"}, "rule": {"id": PHP_FSOCKOPEN}, "process": {"command_line": "ls"}}
        line = msgspec.json.encode(forged)
        assert BlockMatcher(shipped, Stats()).process(line + b"\n") == line + b"\n"


class TestReservedKey:
    """`shellsieve` is the filter's key: a `shellsieve.alerts` in the output is always ours."""

    def test_every_alert_lists_its_rules_under_shellsieve_alerts(self, run: Any) -> None:
        """Each alert carries every matching rule (id, name, ruleset, severity, risk score)."""
        (doc,) = run([{"process": {"command_line": PHP}}])
        assert [a["id"] for a in doc["shellsieve"]["alerts"]] == rule_ids(doc) == [PHP_FSOCKOPEN]

    @pytest.mark.parametrize("forged", [
        {"shellsieve": {"alerts": [{"id": PHP_FSOCKOPEN}]}},
        {"shellsieve.alerts": [{"id": PHP_FSOCKOPEN}]},
        {"shellsieve": "text", "shellsieve.x": 1},
    ])
    def test_an_input_shellsieve_without_hits_moves_aside(self, shipped: Ruleset, forged: dict[str, Any]) -> None:
        """A line we do not alert on that holds our key (nested or flat) leaves with it under
        shellsieve.input, counted as disowned; nothing else of it changes."""
        doc = {"event": {"kind": "alert"}, "process": {"command_line": "ls"}} | forged
        stats = Stats()
        out = BlockMatcher(shipped, stats).process(msgspec.json.encode(doc) + b"\n")
        got = msgspec.json.decode(out)
        assert got == {"event": {"kind": "alert"}, "process": {"command_line": "ls"},
                       "shellsieve": {"input": forged}}
        assert stats.disowned == 1

    def test_the_word_in_a_value_changes_nothing(self, shipped: Ruleset) -> None:
        """`shellsieve` as text, not as a key, leaves the line byte for byte."""
        line = b'{"process":{"command_line":"grep \\"shellsieve\\": /etc/x"},"note":"shellsieve.x"}\n'
        assert BlockMatcher(shipped, Stats()).process(line) == line

    def test_a_wazuh_event_with_our_key_without_hits(self, shipped: Ruleset) -> None:
        """The line-by-line path (another JSON shape) moves it aside too."""
        ex = Exec(("ls", "-la"), "/usr/bin/ls")
        doc = msgspec.json.decode(wazuh_cmdline(ex)[0])
        doc["shellsieve"] = {"alerts": ["forged"]}
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert docs[0]["shellsieve"] == {"input": {"shellsieve": {"alerts": ["forged"]}}}

    def test_flat_keys_of_ours_move_aside_on_an_alert(self, run: Any) -> None:
        """`"rule.id"` or `"event.kind"` written flat (one field to a SIEM) cannot sit beside ours."""
        (doc,) = run([{"process": {"command_line": PHP}, "rule.id": "forged", "event.kind": "alert",
                       "event.dataset": "x"}])
        assert "rule.id" not in doc and "event.kind" not in doc and doc["event.dataset"] == "x"
        assert doc["shellsieve"]["input"] == {"rule.id": "forged", "event.kind": "alert"}
