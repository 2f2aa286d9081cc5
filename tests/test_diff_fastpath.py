"""The raw-scan fast path against a decode-everything path: byte-identical output.

The fast path scans raw NDJSON and decodes only lines where a whole anchor clause of some rule occurs
(see compile/anchors.py); every other line is passed through unread. The reference here decodes every
line and evaluates every rule on it (`BlockMatcher(prefilter=False)`). JSON can spell the same event
many ways, so each event is also written the ways real producers and hostile inputs write it: `\\/`
and `\\uXXXX` escapes (surrogate pairs too), `\\"` and `\\\\`, tabs and odd spacing, keys in another
order, dotted flat keys. If an anchor ever missed a line a rule matches, the outputs would differ.
"""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest

from conftest import PATTERNS, RULESETS, ROOT
from shellsieve.cli import build
from shellsieve.compile import lines as lines_module
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats


def _string(s: str, rng: random.Random, p: float) -> str:
    out = ['"']
    for ch in s:
        r = rng.random()
        if ch == '"':
            out.append('\\"' if r > p else "\\u0022")
        elif ch == "\\":
            out.append("\\\\" if r > p else "\\u005c")
        elif ch == "/" and r < p * 3:
            out.append("\\/")
        elif ord(ch) < 0x20:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\u{ord(ch):04x}"))
        elif r < p:
            code = ord(ch)
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}" if rng.random() < 0.5 else f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _space(rng: random.Random) -> str:
    return rng.choice(["", "", " ", "  ", "\t", " \t "])


def messy(value: Any, rng: random.Random, p: float) -> str:
    """`value` as valid JSON, written with random escapes, spacing and key order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        inner = ("," + _space(rng)).join(f"{_string(k, rng, p)}{_space(rng)}:{_space(rng)}{messy(v, rng, p)}"
                                        for k, v in items)
        return "{" + _space(rng) + inner + _space(rng) + "}"
    if isinstance(value, list):
        return "[" + _space(rng) + ("," + _space(rng)).join(messy(v, rng, p) for v in value) + _space(rng) + "]"
    if isinstance(value, str):
        return _string(value, rng, p)
    return json.dumps(value)


def flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys, the way some shippers write ECS."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def spellings(doc: dict[str, Any], rng: random.Random) -> list[bytes]:
    """Canonical; odd spacing and key order without escapes (the anchors must see through these);
    light and heavy escapes (always decoded: an escape may spell any literal); flat dotted keys."""
    return [msgspec.json.encode(doc), messy(doc, rng, 0.0).encode(), messy(doc, rng, 0.05).encode(),
            messy(doc, rng, 0.5).encode(), messy(flat(doc), rng, 0.0).encode()]


def assert_identical(ruleset: Ruleset, lines: list[bytes]) -> tuple[int, int]:
    """Same output from both paths; returns (alerts, lines the fast path decoded)."""
    block = b"".join(x + b"\n" for x in lines)
    fast_stats, ref_stats = Stats(), Stats()
    fast = BlockMatcher(ruleset, fast_stats).process(block)
    ref = BlockMatcher(ruleset, ref_stats, prefilter=False).process(block)
    if fast != ref:
        for i, (a, b) in enumerate(zip(fast.splitlines(), ref.splitlines(), strict=True)):
            assert a == b, f"line {i}: {lines[i]!r}\nfast: {a!r}\nreference: {b!r}"
    assert fast_stats.alerts == ref_stats.alerts and dict(fast_stats.hits) == dict(ref_stats.hits)
    return ref_stats.alerts, fast_stats.candidates


def test_messy_json_is_valid_and_equal() -> None:
    """The writer itself: every spelling decodes to the same event."""
    rng = random.Random(1)
    doc = {"process": {"command_line": 'php -r "x/y" \\ é 𝔘 \t', "args": ["a", "/b"]}, "n": 1, "f": 1.5}
    for line in spellings(doc, rng):
        decoded = json.loads(line)
        assert decoded == doc or decoded == flat(doc)


def _seed_events() -> list[dict[str, Any]]:
    import sys

    from format_samples import WRITERS
    from test_formats import LINUX_SCENARIOS, WINDOWS_SCENARIOS

    sys.path.insert(0, str(ROOT / "bench"))
    from data import events  # the bench corpus: Defend-shaped process and network events

    docs = [json.loads(x) for _, ex, _ in LINUX_SCENARIOS + WINDOWS_SCENARIOS for x in WRITERS["ecs"](ex)]
    docs += [json.loads(x) for x in (ROOT / "examples" / "events.ndjson").read_bytes().splitlines()
             if x.startswith(b"{")]
    docs += list(events(3000, seed=7))
    return docs


def _seed_lines() -> list[bytes]:
    rng = random.Random(20261123)
    lines = [line for doc in _seed_events() for line in spellings(doc, rng)]
    return lines + [b'{"process":{"command_line":"\\u0070hp -r \'$s=fsockopen(\\"10.1.1.1\\",80);\'"}}',
              b'{"process":{"command_line":"php -r \\u0027$s=fsockopen(\\u002210.1.1.1\\u0022,80);\'"}}',
              b'{ "process" : { "parent" : { "name" : "apache2" } , "name" : "bash" } ,'
              b' "event":{"category":"process","type":"start"},"host":{"os":{"type":"linux"}}}',
              b'{"process.name":"bash","process.parent.name":"nginx","event.category":["process"],'
              b'"event.type":["start"],"host.os.type":"linux"}',
              b'not json', b'{"process":{"name":"bash"', b'[1,2]', b'{"a":"\xff"}']


def test_seed_rules_fast_path_equals_decode_everything() -> None:
    _, ruleset, _ = build([PATTERNS])
    assert not ruleset.per_line  # few joins: the block is scanned whole
    lines = _seed_lines()
    alerts, _ = assert_identical(ruleset, lines)
    assert alerts >= 60  # the comparison is not vacuous: many lines do match
    # Escaped lines are decoded whatever they hold (an escape may spell any literal); on canonical
    # lines the fast path really does skip most of them
    canonical = lines[::5]
    _, decoded = assert_identical(ruleset, canonical)
    assert decoded < len(canonical) // 10


def test_seed_rules_scanned_a_line_at_a_time_equal_decode_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan a ruleset of many joins gets (compile/lines.py PER_LINE_JOINS: each line on its own,
    all but keyed patterns once per line), forced on the seed rules: the reference's output, the
    same hits as the whole-block scan; and a line whose keyed literal repeats past the callback
    bound falls back to the single-match twin as a block does."""
    _, whole, _ = build([PATTERNS], None)
    monkeypatch.setattr(lines_module, "PER_LINE_JOINS", 0)
    _, ruleset, _ = build([PATTERNS], None)
    assert ruleset.per_line and not whole.per_line
    lines = _seed_lines()
    alerts, decoded = assert_identical(ruleset, lines)
    assert alerts >= 60 and (alerts, decoded) == assert_identical(whole, lines)
    block = b"".join(x + b"\n" for x in lines)
    matcher = BlockMatcher(ruleset, Stats())
    assert matcher.process(block) == BlockMatcher(whole, Stats()).process(block)
    assert matcher.rescanned_blocks == 0  # the line scan gave these hits, not the single-match fallback
    storm = b'{"process":{"name":"bash","args":[' + b'"nginx",' * 5000 + b'"x"],"parent":{"name":"apache2"}}}'
    matcher = BlockMatcher(ruleset, Stats())
    assert matcher.process(storm + b"\n") == BlockMatcher(ruleset, Stats(), prefilter=False).process(storm + b"\n")
    assert matcher.rescanned_blocks == 1


@pytest.mark.skipif(not (RULESETS / "sigma").is_dir(), reason="the shared public rulesets are not checked out")
def test_public_rules_fast_path_equals_decode_everything() -> None:
    """Every loadable public rule at once, on events built from the rules' own values."""
    import eql
    from eql import ast

    import test_diff_sigma as ds
    from eql_events import events_for
    from test_diff_eql import _elastic_eql_rules, parse_oracle

    _, ruleset, _ = build([RULESETS / "sigma", RULESETS / "elastic" / "linux"])
    assert len(ruleset.rules) > 1500 and ruleset.per_line  # thousands of joins: scanned a line at a time
    rng = random.Random(7)
    docs: list[dict[str, Any]] = []
    for _path, _rid, text in _elastic_eql_rules():
        try:
            query = parse_oracle(text)
        except eql.EqlError:
            continue
        if isinstance(query.first, ast.EventQuery) and not query.pipes:
            docs += events_for(query.first.query, query.first.event_type, rng, n_sat=2, n_false=1)
    for _path, rule in ds._rules():
        try:
            conditions = [c.parse() for c in rule.detection.parsed_condition]
        except Exception:  # noqa: BLE001 - rules pySigma cannot parse are the loader's business
            continue
        for want in (True, False):
            fl: dict[str, Any] = {}
            for c in conditions:
                ds._satisfy(c, want, fl, rng)
            docs.append(ds._ecs(fl))
    lines = [line for doc in docs for i, line in enumerate(spellings(doc, rng)) if i in (0, 1, 2, 4)]
    alerts, decoded = assert_identical(ruleset, lines)
    print(f"{len(ruleset.rules)} rules, {len(lines)} lines, {alerts} alerts, {decoded} decoded by the fast path")
    # Two public rules have no anchor at all (pure negations such as "the image does not end in .exe"),
    # so every line is decoded for them; every other rule is evaluated only where its anchors say.
    assert alerts >= 1000 and len(ruleset.always) <= 2
