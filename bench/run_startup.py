"""Start-up cost of `shellsieve run` on empty input, in CPU-seconds (user + system of the child).

    python bench/run_startup.py            # shipped rules, then ../shared/rulesets cold and warm

Three figures, each one child process `shellsieve run --rules ... --cache-dir DIR < /dev/null`:
  shipped        the shipped rules, cache warm (the usual start of a sidecar)
  public cold    ../shared/rulesets/sigma and elastic/linux, empty cache: parse, compile, write the cache
  public warm    the same, cache filled by the cold run: read the rule model and databases
Targets (issue 22): shipped <= 0.3, public warm <= 1.5, public cold <= 15 CPU-seconds. CPU-seconds,
not wall: they hold on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULESETS = ROOT.parent / "shared" / "rulesets"
CLI = str(Path(sys.executable).parent / "shellsieve")
TARGETS = {"shipped": 0.3, "public warm": 1.5, "public cold": 15.0}


def cpu_seconds(cmd: list[str]) -> float:
    """user + system CPU-seconds of `cmd` run with empty stdin (os.wait4 on the child alone)."""
    with open(os.devnull, "rb") as null, open(os.devnull, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=null, stdout=out, stderr=subprocess.PIPE)
        err = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{err.decode(errors='replace')[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warm-runs", type=int, default=3, help="warm runs per row; the least is shown")
    ap.add_argument("--no-public", action="store_true", help="shipped rules only")
    args = ap.parse_args()
    public = ["--rules", str(RULESETS / "sigma"), "--rules", str(RULESETS / "elastic" / "linux")]
    cache = Path(tempfile.mkdtemp(prefix="shellsieve-bench-cache-"))
    rows: list[tuple[str, float, list[str]]] = []
    try:
        run = [CLI, "run", "--cache-dir", str(cache)]
        cpu_seconds(run)  # fill the cache for the shipped rules
        rows.append(("shipped", min(cpu_seconds(run) for _ in range(args.warm_runs)), run))
        if not args.no_public and RULESETS.is_dir():
            rows.append(("public cold", cpu_seconds(run + public), run + public))
            rows.append(("public warm", min(cpu_seconds(run + public) for _ in range(args.warm_runs)), run + public))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'start':<12} {'CPU s':>7} {'target':>7}  command (stdin /dev/null)")
    for name, cpu, cmd in rows:
        shown = " ".join(c.replace(str(cache), "$CACHE").replace(str(ROOT.parent), "..") for c in cmd)
        print(f"{name:<12} {cpu:>7.2f} {TARGETS[name]:>7.1f}  {shown}")


if __name__ == "__main__":
    main()
