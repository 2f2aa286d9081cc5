"""Shared fixtures: the shipped ruleset compiled once, and a helper that runs events through it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from alert_schema import check_alert
from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ROOT / "patterns"
SHARED = ROOT.parent / "shared"
RULESETS = SHARED / "rulesets"
SEEDS = SHARED / "seeds"

# rule ids of the shipped seed rules
PHP_FSOCKOPEN = "100103"
PYTHON_PTY = "100620"
REVERSE_SHELL_SEQUENCE = "76e4d92b-61c1-4a95-ab61-5fd94179a1ee"
SHELL_VIA_WEB_SERVER = "231876e7-4d1f-4d63-a47c-47dd1acdc1cb"
WEB_SERVER_CHILD = "f16fca20-4d6c-43f9-aec1-20b6de3b0aeb"
WEBSHELL_RECON = "f64e5c19-879c-4bae-b471-6d84c8339677"
# rule ids of shellsieve's own rules (patterns/shellsieve/)
TLS_CLIENT_SHELL = "aab5cf48-9ab9-4592-89f9-81dcbb26c7c2"
TELNET_PIPE_SHELL = "b48bd732-a438-4680-b7b1-657dd92206df"
# the payload rules of issue 24 (patterns/shellsieve/), which also fire on most seed payloads: tests about
# the seed rules leave them out (seed_rule_ids); tests/test_own_ruleset.py measures them
PAYLOAD_RULES = frozenset({
    "d860371d-7e87-4ada-9ae2-5a1b352ead7a",  # /dev/tcp, /dev/udp, ztcp
    "e0208213-a02f-4e13-ae6a-e609b8c26b36",  # netcat
    "89a5b2d9-bb55-4884-94cd-80e2ac5a6f2e",  # socat
    "4f5d7ec0-54c3-4247-b03f-43373469e0d7",  # scripting runtimes
    "53dd4630-4ac5-4826-9f76-9267cae59202",  # JVM, pwsh, Go, rustcat
    "8e14abff-6f78-4db3-a87e-a7a5b6e9b8b0",  # encoded and staged
})


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CLI caches compiled databases; tests (and the child processes they start) use a temporary
    cache, never the user's ~/.cache."""
    import os

    os.environ["SHELLSIEVE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def shipped() -> Ruleset:
    """The shipped patterns/, loaded and compiled once per test session."""
    _, ruleset, diags = build([PATTERNS])
    assert not [d for d in diags if d.severity == "error"], [d.render() for d in diags]
    return ruleset


Runner = Callable[[Iterable[Any]], list[dict[str, Any]]]


def run_events(ruleset: Ruleset, events: Iterable[Any]) -> list[dict[str, Any]]:
    """Run events (dicts, or raw bytes lines) through a fresh matcher; return the decoded output lines."""
    lines = [e if isinstance(e, bytes) else msgspec.json.encode(e) for e in events]
    out = BlockMatcher(ruleset, Stats()).process(b"".join(line + b"\n" for line in lines))
    return [msgspec.json.decode(x) for x in out.splitlines()]


def rule_ids(doc: dict[str, Any]) -> list[str]:
    """The rule ids an output event was tagged with, in rule order (empty when none): every matching
    rule is under shellsieve.alerts (top-level rule.* names only the most severe)."""
    ours = doc.get("shellsieve")
    alerts = ours.get("alerts") if isinstance(ours, dict) else None
    if not isinstance(alerts, list):
        return []
    check_alert(doc)  # every alert a test looks at has the documented shape
    return [a["rule"]["id"] for a in alerts]


def seed_rule_ids(doc: dict[str, Any]) -> list[str]:
    """rule_ids without the payload rules of issue 24: what the seed rules (and the two older own rules) said."""
    return [r for r in rule_ids(doc) if r not in PAYLOAD_RULES]


@pytest.fixture
def run(shipped: Ruleset) -> Runner:
    """Run events through the shipped rules with fresh sequence state."""
    return lambda events: run_events(shipped, events)
