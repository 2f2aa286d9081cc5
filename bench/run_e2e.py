"""End to end, one run, ratios within it: shellsieve vs the floors and the plain-Python baseline.

    python bench/run_e2e.py --events 200000

Rows: read+write floor (Python copies stdin to stdout), raw Hyperscan floor (one scan of the whole
input with shellsieve's own database), plain-Python baseline (json.loads + `re` per rule-regex per
event + json.dumps of hits, on the seed regexes), and `shellsieve run` with the shipped rules. Each
row is a child process fed from a file; CPU seconds and peak RSS come from wait4().
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import write_corpus  # noqa: E402

FLOOR_COPY = "import sys\nr=sys.stdin.buffer.read1\nw=sys.stdout.buffer.write\nwhile True:\n  b=r(1<<16)\n  if not b: break\n  w(b)\n"
FLOOR_SCAN = """
import sys
from shellsieve.cli import build
_, rs, _ = build(None)
data = sys.stdin.buffer.read()
n = [0]
def cb(i, a, b, f, c): n[0] += 1
rs.database.scan(data, match_event_handler=cb)
sys.stdout.buffer.write(data)
"""
BASELINE = r"""
import json, re, sys
RULES = [
    ("100103", re.compile(r'''php\s+-r\s+['"].*fsockopen\(\s*['"](?:\d{1,3}\.){3}\d{1,3}['"]\s*,\s*\d{1,5}\s*\)''')),
    ("100620", re.compile(r'''(?is)\bpython(?:3)?\b[\s\S]*?\bsocket\.socket\b[\s\S]*?\bconnect\s*\([\s\S]*?\)[\s\S]*?\bos\.dup2\s*\([\s\S]*?\)[\s\S]*?\bpty\.spawn\s*\(\s*["'](?:sh|bash)["']\s*\)''')),
]
WEB = {"apache", "nginx", "www", "apache2", "httpd", "www-data"}
SHELLS = {"bash", "dash", "ash", "zsh"}
out = sys.stdout.write
for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        out(json.dumps({"message": line.rstrip("\n")}) + "\n"); continue
    p = ev.get("process") or {}
    cl = p.get("command_line") or ""
    hits = [rid for rid, rx in RULES if rx.search(cl)]
    if p.get("name") in SHELLS and (p.get("parent") or {}).get("name") in WEB:
        hits.append("231876e7")
    if hits:
        ev.setdefault("rule", {})["id"] = hits
        out(json.dumps(ev) + "\n")
    else:
        out(line)
"""


def _measure(argv: list[str], corpus: Path) -> tuple[float, float, int]:
    """(wall s, cpu s, peak RSS KiB) of one child reading `corpus` on stdin, stdout to /dev/null."""
    with open(corpus, "rb") as fin, open(os.devnull, "wb") as fout:
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(fin.fileno(), 0)
            os.dup2(fout.fileno(), 1)
            os.execvp(argv[0], argv)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{argv} failed with status {status}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--corpus", type=Path, help="reuse an NDJSON file instead of generating one")
    args = ap.parse_args()
    py = sys.executable
    cli = str(Path(py).parent / "shellsieve")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp) / "corpus.ndjson"
        if not args.corpus:
            write_corpus(str(corpus), args.events)
        size = corpus.stat().st_size
        n = sum(1 for _ in open(corpus, "rb"))
        rows = [
            ("floor: read+write (python)", [py, "-c", FLOOR_COPY]),
            ("floor: raw hyperscan scan", [py, "-c", FLOOR_SCAN]),
            ("baseline: json + re per rule", [py, "-c", BASELINE]),
            ("shellsieve run (shipped rules)", [cli, "run", "--stats-interval", "0", "--log-level", "error"]),
        ]
        results = {name: _measure(argv, corpus) for name, argv in rows}
    print(f"corpus: {n} events, {size / 1e6:.1f} MB ({size / n:.0f} B/event)")
    print(f"{'row':34} {'events/s':>11} {'MB/s':>8} {'cpu s':>7} {'rss MiB':>8} {'x baseline':>10}")
    base = results["baseline: json + re per rule"][0]
    for name, (wall, cpu, rss) in results.items():
        print(f"{name:34} {n / wall:11,.0f} {size / wall / 1e6:8.1f} {cpu:7.2f} {rss / 1024:8.1f} {base / wall:10.1f}")


if __name__ == "__main__":
    main()
