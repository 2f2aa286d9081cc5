"""The noise budget: the benign alert rate and the reverse-shell recall of one `shellsieve run`.

One input stream: every reverse shell of the test corpora (tests/corpus/shells.py), then the benign
corpus (tests/corpus/benign.py), later in time, so that no sequence opened by a shell is cut short
by the benign events. `measure` runs `shellsieve run` over it with the given options and scores the
output: benign events alerted, the rules responsible, the shells that no event of theirs alerted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from corpus import benign
from corpus.lookalikes import events as lookalike_events
from corpus.payloads import execs
from corpus.shells import Shell, shells

__all__ = ["BUDGET", "COLLECTIONS", "RECOMMENDED", "SELECTION", "Score", "alert_ids", "corpora", "measure",
           "read_options", "score"]

ROOT = Path(__file__).resolve().parents[2]
RULESETS = ROOT.parent / "shared" / "rulesets"
BUDGET = 0.01  # at most 1% of benign events alerted
# the shipped rules beside the SigmaHQ and Elastic collections
COLLECTIONS = ["--rules", str(ROOT / "patterns"), "--rules", str(RULESETS / "sigma"),
               "--rules", str(RULESETS / "elastic" / "linux")]
# The recommended selection for the public collections, one option a line (docs/noise.md justifies each).
SELECTION = ROOT / "deploy" / "selection" / "public-collections.args"


def read_options(path: Path) -> list[str]:
    """The options of an args file: one a line, `#` starts a comment."""
    return [opt for line in path.read_text().splitlines() if (opt := line.split("#", 1)[0].strip())]


RECOMMENDED = read_options(SELECTION)


class Score(NamedTuple):
    """What one run did to the benign corpus and to the reverse shells."""
    benign: int
    benign_alerted: int
    rules: Counter[str]  # rule id -> benign events it alerted
    names: dict[str, str]  # rule id -> rule name
    shells: int
    missed: list[str]  # labels of the shells with no alerted event

    @property
    def rate(self) -> float:
        return self.benign_alerted / self.benign if self.benign else 0.0


def alert_ids(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(id, name) of every rule that alerted an output event (shellsieve.alerts)."""
    meta = doc.get("shellsieve")
    alerts = meta.get("alerts", []) if isinstance(meta, dict) else []
    return [(a["rule"]["id"], a["rule"].get("name", "")) for a in alerts]


def payload_shells() -> list[Shell]:
    """The reverse and bind shells of issue 24's payload corpus (tests/corpus/payloads.py) as ECS process
    starts (May 2026, before the other shells), labelled `family:command line`."""
    from format_samples import WRITERS  # tests/ is on the path of every caller

    return [Shell(f"{pl.family}:{ex.command_line}", [msgspec.json.decode(x) for x in WRITERS["ecs"](ex)])
            for pl, ex in execs()]


def corpora(seed: int = benign.SEED, count: int = benign.COUNT, lookalikes: bool = False,
            payloads: bool = False) -> tuple[list[Shell], list[dict[str, Any]]]:
    """The reverse shells and the benign events, in the order they are fed (and in time order): with
    `payloads`, issue 24's payload corpus before the other shells; with `lookalikes`, the look-alikes
    (tests/corpus/lookalikes.py, a day before) before the benign events."""
    shell_list = (payload_shells() if payloads else []) + shells()
    return shell_list, (lookalike_events() if lookalikes else []) + benign.events(seed, count)


def score(out: list[dict[str, Any]], shell_list: list[Shell], n_benign: int) -> Score:
    """Score the output of a run whose input was the shells' events, then `n_benign` benign events."""
    n_shell = sum(len(s.events) for s in shell_list)
    if len(out) != n_shell + n_benign:
        raise ValueError(f"{len(out)} output events for {n_shell} + {n_benign} input events")
    missed, k = [], 0
    for s in shell_list:
        if not any(alert_ids(doc) for doc in out[k:k + len(s.events)]):
            missed.append(s.label)
        k += len(s.events)
    rules: Counter[str] = Counter()
    names: dict[str, str] = {}
    alerted = 0
    for doc in out[n_shell:]:
        hits = alert_ids(doc)
        alerted += bool(hits)
        for rid, name in hits:
            rules[rid] += 1
            names[rid] = name
    return Score(n_benign, alerted, rules, names, len(shell_list), missed)


def measure(options: list[str], corpus: tuple[list[Shell], list[dict[str, Any]]] | None = None,
            timeout: float = 900) -> Score:
    """Run `shellsieve run OPTIONS` over the shells then the benign corpus; score its output."""
    shell_list, benign_events = corpus or corpora()
    enc = msgspec.json.Encoder()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.ndjson"
        with src.open("wb") as fh:
            for ev in [e for s in shell_list for e in s.events] + benign_events:
                fh.write(enc.encode(ev) + b"\n")
        with src.open("rb") as stdin:
            proc = subprocess.run([sys.executable, "-m", "shellsieve", "run", "--stats-interval", "0", *options],
                                  stdin=stdin, capture_output=True, timeout=timeout, env=os.environ.copy(),
                                  cwd=ROOT)  # the args file's paths are relative to the repository
    if proc.returncode != 0:
        raise RuntimeError(f"shellsieve run {' '.join(options)} exited {proc.returncode}: {proc.stderr[-2000:]!r}")
    out = [msgspec.json.decode(line) for line in proc.stdout.splitlines()]
    return score(out, shell_list, len(benign_events))
