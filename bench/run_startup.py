"""Start-up cost of `shellsieve run` on empty input, in CPU-seconds (user + system of the child).

    python bench/run_startup.py            # shipped rules, then the public collections

Each figure is one child process `shellsieve run ... --cache-dir DIR < /dev/null`:
  shipped        the shipped rules, cache warm (the usual start of a sidecar)
  public cold    the public collections (deploy/selection/public-collections.args: patterns/,
                 ../shared/rulesets/sigma and elastic/linux, with its selection), empty cache:
                 parse, compile, write the cache
  public warm    the same, cache filled by the cold run: read the rule model, layout and databases
  public 1 file  the same after one Elastic rule file changed (a comment appended): that file is
                 parsed again, the others' rules come from the per-file cache, the databases from
                 the entry compiled from the same patterns
  public 1 query then that rule's query changed (one more process name): the file is parsed again
                 and both databases are compiled, the patterns being new
The collections are copied to a temporary folder first, so that one file can be changed.
Targets (issue 22): shipped <= 0.3, public warm <= 1.5, public cold <= 15 CPU-seconds. CPU-seconds,
not wall: they hold on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULESETS = ROOT.parent / "shared" / "rulesets"
SELECTION = ROOT / "deploy" / "selection" / "public-collections.args"
CLI = str(Path(sys.executable).parent / "shellsieve")
TARGETS = {"shipped": 0.3, "public cold": 15.0, "public warm": 1.5, "public 1 file": 15.0, "public 1 query": 15.0}
CHANGED = "linux/command_and_control_cat_network_activity.toml"  # an EQL rule: the costliest format to parse


def cpu_seconds(cmd: list[str]) -> float:
    """user + system CPU-seconds of `cmd` run with empty stdin (os.wait4 on the child alone)."""
    with open(os.devnull, "rb") as null, open(os.devnull, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=null, stdout=out, stderr=subprocess.PIPE, cwd=ROOT)
        err = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{err.decode(errors='replace')[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def selection() -> list[str]:
    """The options of the public-collections selection file, one a line, comments dropped."""
    return [line for raw in SELECTION.read_text().splitlines() if (line := re.sub(r"#.*", "", raw).strip())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warm-runs", type=int, default=3, help="warm runs per row; the least is shown")
    ap.add_argument("--no-public", action="store_true", help="shipped rules only")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shellsieve-bench-"))
    cache, copy = tmp / "cache", tmp / "rulesets"
    rows: list[tuple[str, float, list[str]]] = []
    try:
        run = [CLI, "run", "--cache-dir", str(cache)]
        cpu_seconds(run)  # fill the cache for the shipped rules
        rows.append(("shipped", min(cpu_seconds(run) for _ in range(args.warm_runs)), run))
        if not args.no_public and RULESETS.is_dir():
            shutil.copytree(RULESETS / "sigma", copy / "sigma")
            shutil.copytree(RULESETS / "elastic" / "linux", copy / "elastic" / "linux")
            public = run + ["--rules", "patterns", "--rules", str(copy / "sigma"),
                            "--rules", str(copy / "elastic" / "linux"), *selection()]
            rows.append(("public cold", cpu_seconds(public), public))
            rows.append(("public warm", min(cpu_seconds(public) for _ in range(args.warm_runs)), public))
            with open(copy / "elastic" / CHANGED, "a", encoding="utf-8") as fh:
                fh.write("\n# changed by bench/run_startup.py\n")
            rows.append(("public 1 file", cpu_seconds(public), public))
            changed = copy / "elastic" / CHANGED
            query = changed.read_text(encoding="utf-8")
            if '"fish")]' not in query:
                raise SystemExit(f"{CHANGED}: its query changed upstream; pick another edit")
            changed.write_text(query.replace('"fish")]', '"fish", "ash")]', 1), encoding="utf-8")
            rows.append(("public 1 query", cpu_seconds(public), public))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'start':<14} {'CPU s':>7} {'target':>7}  command (stdin /dev/null, in the repository)")
    chosen = selection()
    for name, cpu, cmd in rows:
        shown = " ".join(c.replace(str(tmp), "$TMP").replace(str(ROOT.parent), "..") for c in cmd if c not in chosen)
        if any(c in chosen for c in cmd):
            shown += f" + the {len(chosen)} options of {SELECTION.relative_to(ROOT)}"
        print(f"{name:<14} {cpu:>7.2f} {TARGETS[name]:>7.1f}  {shown}")


if __name__ == "__main__":
    main()
