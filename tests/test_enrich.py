"""Alert fields: one ECS shape; an upstream alert's own rule/threat kept; nothing of the input lost."""

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
from shellsieve.run.enrich import Hit, alert_for, enrich
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

_OURS_IN_EVENT = ("kind", "severity", "risk_score")


def _upstream(doc: dict[str, Any]) -> bool:
    return "rule" in doc or "threat" in doc


def _our_fields(doc: dict[str, Any], upstream: bool) -> dict[str, Any]:
    """What of an enriched event is ours: shellsieve (minus the input's) and, unless the input was
    an upstream alert, rule, threat and event.kind/severity/risk_score."""
    out: dict[str, Any] = {"shellsieve": {k: v for k, v in doc["shellsieve"].items() if k != "input"}}
    if not upstream:
        out.update({k: doc[k] for k in ("rule", "threat") if k in doc})
        out["event"] = {k: doc["event"][k] for k in _OURS_IN_EVENT if k in doc["event"]}
    return out


def _restore(doc: dict[str, Any], upstream: bool) -> dict[str, Any]:
    """The input event back from an enriched one: our fields out, shellsieve.input back in place."""
    moved = doc.get("shellsieve", {}).get("input", {})
    out = {k: v for k, v in doc.items() if k != "shellsieve"}
    if not upstream:
        out = {k: v for k, v in out.items() if k not in ("rule", "threat")}
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
        """Our fields are the same on any input as on an empty one (on an upstream alert: only
        shellsieve.alerts), objects, never dotted keys."""
        up = _upstream(doc)
        got = enrich(copy.deepcopy(doc), _hits(rules))
        want = _our_fields(enrich({}, _hits(rules)), up)
        if up:
            want["shellsieve"]["upstream_alert"] = True
        assert _our_fields(got, up) == want
        assert not [k for k in got if "." in k]

    @settings(max_examples=300, deadline=None)
    @given(_doc, st.sampled_from([RULES[:1], RULES]))
    def test_input_values_are_kept(self, doc: dict[str, Any], rules: tuple[Rule, ...]) -> None:
        """Nothing of the input is lost: our fields out and shellsieve.input put back give the input."""
        up = _upstream(doc)
        got = enrich(copy.deepcopy(doc), _hits(rules))
        if doc.get("event") == {} and not up:  # an empty event object reads as none once ours are in it
            doc = {k: v for k, v in doc.items() if k != "event"}
        assert _restore(got, up) == doc

    def test_upstream_alert_is_never_overwritten(self) -> None:
        """An input that is an alert already (its own rule/threat) keeps rule, threat and event.*;
        ours go to shellsieve.alerts only, and its own `shellsieve` moves to shellsieve.input."""
        doc = {"event": {"kind": "alert", "severity": 1, "category": ["process"]},
               "rule": {"id": "edr-1", "name": "EDR"}, "threat": {"framework": "none"},
               "shellsieve": {"sequence": "x"}}
        got = enrich(copy.deepcopy(doc), _hits(RULES[:1]))
        assert {k: got[k] for k in ("event", "rule", "threat")} == {k: doc[k] for k in ("event", "rule", "threat")}
        assert got["shellsieve"]["input"] == {"shellsieve": doc["shellsieve"]}
        assert got["shellsieve"]["upstream_alert"] is True
        assert [a["rule"]["id"] for a in got["shellsieve"]["alerts"]] == ["a"]

    @pytest.mark.parametrize("flat", [{"rule.id": "edr-1"}, {"threat.technique.id": ["T1059"]}])
    def test_flat_upstream_keys_make_an_upstream_alert(self, flat: dict[str, Any]) -> None:
        """Dotted `rule.*` / `threat.*` keys are the same fields to a SIEM: the event keeps them."""
        got = enrich({"event.kind": "alert", **flat}, _hits(RULES[:1]))
        assert {k: got[k] for k in flat} == flat and got["event.kind"] == "alert"
        assert "rule" not in got and "threat" not in got and "event" not in got

    def test_input_event_values_move_aside(self) -> None:
        """On an event that is not an alert, its own event.kind/severity go to shellsieve.input.event."""
        got = enrich({"event": {"kind": "event", "severity": 1, "category": ["process"]}}, _hits(RULES[:1]))
        assert got["event"] == {"category": ["process"], "kind": "alert", "severity": 3, "risk_score": 73}
        assert got["shellsieve"]["input"] == {"event": {"kind": "event", "severity": 1}}

    def test_most_severe_rule_and_threat_union(self) -> None:
        """rule.* is the most severe rule (ties: rule order); threat.* parallel arrays over all rules."""
        got = enrich({}, _hits((RULES[1], RULES[0])))
        assert got["rule"] == {"id": "a", "name": "A", "reference": "https://x", "ruleset": "eql"}
        assert (got["event"]["severity"], got["event"]["risk_score"]) == (3, 73)
        assert got["threat"] == {"framework": "MITRE ATT&CK",
                                 "tactic": {"id": ["TA0002"], "name": ["Execution"], "reference": [""]},
                                 "technique": {"id": ["T1059"], "name": ["Command"], "reference": [""]}}
        assert [a["rule"]["id"] for a in got["shellsieve"]["alerts"]] == ["b", "a"]
        tie = Rule(id="c", name="C", ruleset="eql", location=Location("t"), query=_Q, severity="high", risk_score=73)
        assert enrich({}, _hits((RULES[0], tie)))["rule"]["id"] == "a"
        assert enrich({}, _hits((tie, RULES[0])))["rule"]["id"] == "c"

    def test_alerts_entry_nests_threat(self) -> None:
        """Each shellsieve.alerts entry holds its rule, severity, risk score and Elastic's nested threat."""
        got = enrich({}, _hits(RULES[:1]))
        assert got["shellsieve"]["alerts"] == [{
            "rule": {"id": "a", "name": "A", "reference": "https://x", "ruleset": "eql"},
            "severity": 3, "risk_score": 73,
            "threat": [{"framework": "MITRE ATT&CK", "tactic": {"id": "TA0002", "name": "Execution"},
                        "technique": [{"id": "T1059", "name": "Command"}]}]}]

    def test_text_rule_is_an_upstream_alert(self) -> None:
        """`"rule": "text"` is the input's: kept, ours under shellsieve.alerts only, no dotted keys."""
        got = enrich({"rule": "text", "event": 5}, _hits(RULES[:1]))
        assert got["rule"] == "text" and got["event"] == 5 and "input" not in got["shellsieve"]
        assert not [k for k in got if "." in k]

    def test_sequence_quote_with_a_text_shellsieve(self) -> None:
        """A sequence alert on an input whose `shellsieve` is text: quote and input both under ours."""
        got = enrich({"shellsieve": "text"}, [Hit(RULES[0], {"first": {"x": 1}})])
        assert got["shellsieve"]["sequence"] == [{"first": {"x": 1}, "rule.id": "a"}]
        assert got["shellsieve"]["input"] == {"shellsieve": "text"}

    def test_suppressed_shows_per_alert(self) -> None:
        """A hit's `suppressed` shows on its own alerts[] entry, never in the cached, shared one."""
        hits = _hits(RULES)
        hits[1].suppressed = {"count": 3, "since": "2026-12-04T09:00:00Z"}
        got = enrich({}, hits)
        assert "suppressed" not in got["shellsieve"]["alerts"][0]
        assert got["shellsieve"]["alerts"][1]["suppressed"] == {"count": 3, "since": "2026-12-04T09:00:00Z"}
        assert "suppressed" not in enrich({}, _hits(RULES))["shellsieve"]["alerts"][1]

    def test_shared_fields_are_not_changed_by_an_event(self) -> None:
        """The alert parts are shared by every alert of the same rules: enriching must never write into them."""
        entry = alert_for(_hits(RULES))
        before = copy.deepcopy((entry.top, entry.rule, entry.threat, entry.alerts))
        for doc in ({}, {"event": {"kind": "event"}}, {"rule": "x"}, {"threat": {"technique": "t"}}):
            got = enrich(doc, _hits(RULES))
            got["event"] = got.get("event") if isinstance(got.get("event"), dict) else {}
            got["event"]["extra"] = 1
        assert (entry.top, entry.rule, entry.threat, entry.alerts) == before


class TestPipeline:
    """Through the real matcher and router, shipped rules."""

    def test_ecs_input_with_its_own_alert(self, run: Any) -> None:
        """An ECS event that is an alert already (an EDR's `rule`) and matches: its rule and event.*
        stay, ours go under shellsieve.alerts."""
        ev = {"event": {"kind": "alert", "category": ["process"]}, "rule": {"id": "x", "name": "edr"},
              "process": {"command_line": PHP, "name": "php", "args": ["php", "-r", PHP[7:]]}}
        (out,) = run([ev])
        assert rule_ids(out) == [PHP_FSOCKOPEN] and out["shellsieve"]["upstream_alert"] is True
        assert out["rule"] == ev["rule"] and out["event"] == ev["event"] and "threat" not in out

    def test_wazuh_rule_stays_in_rule(self, shipped: Ruleset) -> None:
        """A Wazuh alert keeps its own rule where Wazuh users look for it; ours under shellsieve.alerts."""
        ex = Exec(("php", "-r", '$s=fsockopen("10.10.10.10",9001);'), "/usr/bin/php")
        doc = msgspec.json.decode(wazuh_cmdline(ex)[0])
        doc["rule"] = {"level": 3, "id": "80700"}
        docs, _ = run_lines(shipped, [msgspec.json.encode(doc)])
        assert docs[0]["rule"] == {"level": 3, "id": "80700"} and "input" not in docs[0]["shellsieve"]
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_our_alert_through_a_second_filter(self, run: Any) -> None:
        """Our own alert read again (a second filter in the pipeline) is an upstream alert: its rule,
        threat and event stay, its shellsieve moves to shellsieve.input, the alerts are the same."""
        (first,) = run([{"process": {"command_line": PHP}}])
        (second,) = run([first])
        assert {k: second[k] for k in ("rule", "threat", "event")} == {k: first[k] for k in ("rule", "threat", "event")}
        assert second["shellsieve"]["input"] == {"shellsieve": first["shellsieve"]}
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
        assert [a["rule"]["id"] for a in doc["shellsieve"]["alerts"]] == [PHP_FSOCKOPEN] == [doc["rule"]["id"]]

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
        """`"event.kind"` written flat (one field to a SIEM) cannot sit beside ours: it moves aside."""
        (doc,) = run([{"process": {"command_line": PHP}, "event.kind": "event", "event.dataset": "x"}])
        assert "event.kind" not in doc and doc["event.dataset"] == "x" and doc["event"]["kind"] == "alert"
        assert doc["shellsieve"]["input"] == {"event.kind": "event"}
