"""bench/shape_stages.py runs on a small corpus and its tables say what a reader takes from them:
the profile that bounds each shape (docs/performance.md) is reproduced with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"


@pytest.mark.skipif(not (PEERS / "gen_corpus.py").exists(), reason="needs ../shared/peers beside the project")
def test_shape_stages_tables() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "shape_stages.py"), "--events", "400",
                          "--corpus-events", "20000", "--repeat", "1"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    rows = [cells for line in out.splitlines() if line.startswith("| ") and not line.startswith("| shape")
            for cells in [[c.strip() for c in line.strip().strip("|").split("|")]]]
    stage_rows = {r[0]: r[1:] for r in rows if len(r) == 12}
    assert list(stage_rows) == ["plain", "web-server parent", "escaped \\u command line", "10% reverse shells"]
    events, candidates, alerts = (int(stage_rows["web-server parent"][i].replace(",", "")) for i in range(3))
    assert events == candidates == 400 and 0 < alerts < events  # every web-server child is a candidate
    assert stage_rows["plain"][-1] == "1.00"
    assert int(stage_rows["10% reverse shells"][2]) == 40  # one line in ten alerts
    per_candidate = {r[0]: r[1:] for r in rows if len(r) == 8}
    assert per_candidate["plain"][1] == "-"  # no alert line to time
    assert all(float(c) > 0 for c in per_candidate["web-server parent"])
