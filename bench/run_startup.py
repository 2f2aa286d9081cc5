"""Start-up with large rule sets: cold (compile, write the cache) vs warm (load the cached database).

    python bench/run_startup.py            # shipped rules and ../shared/rulesets, 2 warm runs each

Each row is `shellsieve check --quiet` as a child process with a fresh cache directory: the first
run compiles and writes the cache, the next ones load it. Wall seconds, the compile stage as
`check` reports it, and the cache status it printed; ratios are within this one run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULESETS = ROOT.parent / "shared" / "rulesets"
CLI = str(Path(sys.executable).parent / "shellsieve")
_DB = re.compile(r"database: (\d+) patterns, (\d+) bytes, compiled in ([\d.]+) s \(cache: (\w+)\)")


def _check(rule_args: list[str], cache: Path) -> tuple[float, float, str, str]:
    t0 = time.perf_counter()
    out = subprocess.run([CLI, "check", "--quiet", "--cache-dir", str(cache), *rule_args],
                         capture_output=True, text=True, check=False).stdout
    wall = time.perf_counter() - t0
    m = _DB.search(out)
    if m is None:
        raise SystemExit(f"unexpected `check` output:\n{out[-2000:]}")
    return wall, float(m.group(3)), m.group(4), f"{m.group(1)} patterns, {int(m.group(2)) / 1e6:.2f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warm-runs", type=int, default=2)
    args = ap.parse_args()
    sets = {"shipped rules": []}
    if RULESETS.is_dir():
        sets["public rulesets"] = ["--rules", str(RULESETS / "sigma"), "--rules", str(RULESETS / "elastic" / "linux")]
    print(f"{'rule set':<16} {'run':<6} {'wall s':>8} {'compile s':>10} {'cache':>6}  database")
    for name, rule_args in sets.items():
        cache = Path(tempfile.mkdtemp(prefix="shellsieve-bench-cache-"))
        try:
            rows = [_check(rule_args, cache) for _ in range(1 + args.warm_runs)]
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        for i, (wall, comp, status, db) in enumerate(rows):
            print(f"{name:<16} {'cold' if i == 0 else 'warm':<6} {wall:>8.2f} {comp:>10.3f} {status:>6}  {db}")
        warm = min(r[0] for r in rows[1:]) if len(rows) > 1 else float("nan")
        print(f"{name:<16} cold/warm wall ratio: {rows[0][0] / warm:.1f}x")


if __name__ == "__main__":
    main()
