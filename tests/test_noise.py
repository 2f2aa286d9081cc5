"""Rules that cannot be trusted: a pattern matching the empty string, an anchor firing on most
benign events, no anchor at all. Warnings naming the rule; errors under --strict; listed by check."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import ROOT
from shellsieve import noise
from shellsieve.cli import build, main
from shellsieve.diagnostics import Code

_SIGMA = """title: {title}
id: {id}
logsource:
  product: linux
  category: process_creation
detection:
  s:
    {cond}
  condition: s
"""
NOISY_ID = "0b6f2e1d-7c55-4c8e-9a31-4f1c6e0a2d4b"
QUIET_ID = "1c7a3f2e-8d66-4d9f-8b42-5a2d7f1b3e5c"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_data", ROOT / "bench" / "data.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _shape(doc: Any) -> Any:
    """Keys and value types of a document, recursively: what the sample must share with the corpus."""
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items()}
    return type(doc).__name__


def _write(tmp_path: Path, **rules: str) -> Path:
    for name, cond in rules.items():
        rid = NOISY_ID if name == "noisy" else QUIET_ID
        (tmp_path / f"{name}.yml").write_text(_SIGMA.format(title=name, id=rid, cond=cond))
    return tmp_path


class TestSample:
    def test_events_have_the_bench_shape(self) -> None:
        """Each sample line is an event of the same shape as the generator's, and the shares sum to one."""
        bench = _bench()
        corpus = {}
        for ev in bench.events(3000):
            corpus.setdefault((ev["process"].get("command_line"), ev["event"]["category"][0]), ev)
        lines = noise.sample()
        assert abs(sum(share for _, share in lines) - 1.0) < 1e-9
        for line, _ in lines:
            ev = msgspec.json.decode(line)
            twin = corpus.get((ev["process"].get("command_line"), ev["event"]["category"][0]))
            if twin is not None:  # the rarest shells may not be among the first 3000 events
                assert _shape(ev) == _shape(twin)
        web = len(noise.WEB_CHILDREN) * len(noise.WEB_PARENTS)
        assert len(lines) == len(noise.BENIGN) + web + 2 * len(noise.SHELLS)


class TestNoisyAnchor:
    def test_anchor_on_a_common_parent_is_reported(self, tmp_path: Path) -> None:
        """A rule anchored only on a bash parent (98% of the corpus) is an SS304 warning naming it."""
        _, ruleset, diags = build([_write(tmp_path, noisy="ParentImage|endswith: '/bash'",
                                           quiet="CommandLine|contains: 'nc -e /bin/sh'")])
        flagged = [d for d in diags if d.code is Code.NOISY_ANCHOR]
        assert [(d.rule_id, d.severity) for d in flagged] == [(NOISY_ID, "warning")]
        assert "98%" in flagged[0].message and flagged[0].location.path == str(tmp_path / "noisy.yml")
        assert len(ruleset.rules) == 2  # a warning: it runs unless --strict

    def test_check_strict_refuses_it_and_check_lists_it(self, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
        """`check` exits 0 and lists it as a warning; `check --strict` exits 1 and shows it as an error."""
        d = _write(tmp_path, noisy="ParentImage|endswith: '/bash'")
        assert main(["check", "--format", "text", "--no-cache", "--quiet", "--rules", str(d)]) == 0
        out = capsys.readouterr().out
        assert f"warning[SS304] rule {NOISY_ID}" in out and "untrusted (errors under --strict): 1 rules" in out
        assert main(["check", "--format", "text", "--no-cache", "--quiet", "--strict", "--rules", str(d)]) == 1
        assert f"error[SS304] rule {NOISY_ID}" in capsys.readouterr().out

    def test_run_strict_refuses_to_start(self, tmp_path: Path) -> None:
        """`run --strict` with such a rule exits 1 before reading any input."""
        rules = _write(tmp_path, noisy="ParentImage|endswith: '/bash'")
        assert main(["run", "--no-cache", "--strict", "--rules", str(rules)]) == 1

    def test_shipped_rules_are_quiet(self) -> None:
        """No shipped rule is untrusted: each anchor fires on a small share of the corpus."""
        _, ruleset, diags = build(None)
        assert not [d for d in diags if d.code.strict]
        assert max(noise.anchor_rates(ruleset, noise.sample()).values()) < 0.1


class TestEmptyMatch:
    @pytest.mark.parametrize("pattern", ["a*", ".*", "x?", "(?:|nc)", "^", "(?i)(?:bash|)"])
    def test_pattern_matching_empty_is_reported(self, tmp_path: Path, pattern: str) -> None:
        """A regex that matches the empty string (so any value) is an SS303 warning naming the rule and field."""
        d = _write(tmp_path, noisy=f"CommandLine|re: '{pattern}'")
        _, _, diags = build([d])
        (hit,) = [x for x in diags if x.code is Code.MATCHES_EMPTY]
        assert hit.rule_id == NOISY_ID and hit.severity == "warning" and "process.command_line" in hit.message

    @pytest.mark.parametrize("pattern", ["a+", "nc -e", r"\bnc\b", "(?:x|y)z?"])
    def test_pattern_needing_a_character_is_not(self, tmp_path: Path, pattern: str) -> None:
        """A regex that needs at least one character is not reported."""
        _, _, diags = build([_write(tmp_path, quiet=f"CommandLine|re: '{pattern}'")])
        assert not [x for x in diags if x.code is Code.MATCHES_EMPTY]

    def test_empty_contains(self, tmp_path: Path) -> None:
        """`contains: ''` (pySigma's `*` wildcard) holds on any value: SS303, and its anchor fires on every event."""
        _, _, diags = build([_write(tmp_path, noisy="CommandLine|contains: ''")])
        assert sorted(x.code.code for x in diags if x.rule_id == NOISY_ID) == ["SS303", "SS304"]

    def test_strict_refuses_a_rule_that_matches_everything(self, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
        """`check --strict` exits 1 on an `a*` rule (it used to load it and alert on every event)."""
        d = _write(tmp_path, noisy="CommandLine|re: 'a*'")
        assert main(["check", "--format", "text", "--no-cache", "--quiet", "--strict", "--rules", str(d)]) == 1
        assert f"error[SS303] rule {NOISY_ID}" in capsys.readouterr().out
