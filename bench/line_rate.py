"""Line rate per CPU-second (issue 23): every row in ONE run, CPU-seconds of child processes.

    python bench/line_rate.py --events 200000            # the README's table
    python bench/line_rate.py --events 20000 --no-public --rounds 1   # a quick look
    python bench/line_rate.py --json rows.json           # also the figures as JSON: bench/plots.py draws them
    python bench/line_rate.py --public-hits hits.json    # public alert ids per event: written, then compared

The corpus is `../shared/peers/gen_corpus.py` (ECS process starts, ~660 B each, 0.1% reverse shells,
~2% web-server children), written to a temporary directory. Every row is a child process; its
CPU-seconds are user + system from `os.wait4`, its peak RSS `ru_maxrss`. Each row also runs on an
empty input, and `steady` is the total minus that start-up cost. Rows:

* shellsieve, shipped rules: `shellsieve run` on the corpus;
* the floor: `py_engines.py floor_hs_cmd`, one raw Hyperscan scan of the whole file with the seed
  command-line patterns;
* the prototype: `py_engines.py hs_raw`, one scan of the raw bytes per batch, only hit lines decoded;
* the baseline: `py_engines.py re_loop`, plain Python json + `re` per rule per event;
* shellsieve, public collections: patterns/ + SigmaHQ + Elastic linux with
  deploy/selection/public-collections.args, on the first `--public-events` events of the corpus.

The peers run from ../shared/peers as they are (imported by path, never copied). Rounds are rotated
(round k starts at row k) and each figure is the median of the rounds. Then the per-shape cost:
`shellsieve run` on `--shape-events` events of one shape each (plain benign events, events with a
web-server parent, plain events whose command line is written with `\\u002f` escapes, plain events
with 10% reverse shells), as steady CPU-us per event and the ratio to the plain shape.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "peers"
PUBLIC = [ROOT.parent / "shared" / "rulesets" / "sigma", ROOT.parent / "shared" / "rulesets" / "elastic" / "linux"]
SELECTION = ROOT / "deploy" / "selection" / "public-collections.args"


@dataclass
class Cost:
    cpu: float  # user + system seconds
    rss_kib: int


@dataclass
class Row:
    name: str
    events: int
    cpu: float  # median total CPU-seconds
    start: float  # median CPU-seconds on an empty input
    rss_mib: float

    @property
    def steady(self) -> float:
        return max(self.cpu - self.start, 1e-9)

    @property
    def rate(self) -> float:
        return self.events / self.steady


def child(argv: list[str], stdin: Path, cwd: Path = ROOT) -> Cost:
    """Run argv with stdin from a file and stdout to /dev/null; its CPU and peak RSS from wait4."""
    with open(stdin, "rb") as fin, open(os.devnull, "wb") as fout, tempfile.TemporaryFile() as ferr:
        pid = os.fork()
        if pid == 0:
            os.chdir(cwd)
            os.dup2(fin.fileno(), 0)
            os.dup2(fout.fileno(), 1)
            os.dup2(ferr.fileno(), 2)
            os.execvp(argv[0], argv)
        _, status, usage = os.wait4(pid, 0)
        if status != 0:
            ferr.seek(0)
            raise SystemExit(f"{argv} failed ({status}):\n{ferr.read()[-2000:].decode(errors='replace')}")
    return Cost(usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def selection_args() -> list[str]:
    out = []
    for line in SELECTION.read_text().splitlines():
        out += line.split("#", 1)[0].split()
    return out


def head(src: Path, dst: Path, n: int) -> Path:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if i >= n:
                break
            fout.write(line)
    return dst


def escaped(line: bytes) -> bytes | None:
    """The same event with every `/` of its command line written as the JSON escape `\\u002f`."""
    cl = json.loads(line).get("process", {}).get("command_line")
    if not isinstance(cl, str) or "/" not in cl:
        return None
    enc = b'"command_line":' + json.dumps(cl, ensure_ascii=False).encode()
    if enc not in line:
        return None
    return line.replace(enc, enc.replace(b"/", b"\\u002f"), 1)


def shapes(corpus: Path, n: int, tmp: Path) -> dict[str, Path]:
    """Files of n events, one shape each, drawn from the corpus and its ground truth."""
    plain, web, esc, mal = [], [], [], []
    with open(corpus, "rb") as f, open(str(corpus) + ".truth") as t:
        for line, truth in zip(f, t):
            truth = truth.strip()
            if truth == "benign":
                if len(plain) < n:
                    plain.append(line)
                if len(esc) < n and (e := escaped(line)) is not None:
                    esc.append(e)
            elif truth.startswith("web:"):
                web.append(line)
            elif truth.startswith("mal:"):
                mal.append(line)
    rshell = [mal[i // 10 % len(mal)] if i % 10 == 9 else plain[i] for i in range(len(plain))]
    out = {}
    for name, lines in (("plain", plain), ("web-server parent", web), ("escaped \\u command line", esc),
                        ("10% reverse shells", rshell)):
        path = tmp / f"shape-{len(out)}.ndjson"
        with open(path, "wb") as f:
            for i in range(n):
                f.write(lines[i % len(lines)])
        out[name] = path
    return out


def alert_ids(argv: list[str], corpus: Path) -> list[list[str]]:
    """Per output line, the rule ids of its alerts (the `shellsieve.alerts` the filter adds)."""
    out = subprocess.run(argv, stdin=open(corpus, "rb"), capture_output=True, check=True, cwd=ROOT).stdout
    ids = []
    for line in out.splitlines():
        ours = json.loads(line).get("shellsieve")
        alerts = ours.get("alerts", []) if isinstance(ours, dict) else []
        ids.append(sorted(a["rule"]["id"] for a in alerts))
    return ids


def compare_hits(path: Path, ids: list[list[str]]) -> None:
    """Write the public collections' alert rule ids per event to `path`, or compare them with it."""
    if not path.exists():
        path.write_text(json.dumps(ids) + "\n")
        print(f"public hits: {len(ids):,} events, {sum(map(bool, ids)):,} with alerts, written to {path}")
        return
    ref = json.loads(path.read_text())
    differ = sum(a != b for a, b in zip(ref, ids)) + abs(len(ref) - len(ids))
    print(f"public hits: {len(ids):,} events, {sum(map(bool, ids)):,} with alerts; "
          f"{differ} differ from {path}")


def median_rows(specs: list[tuple[str, list[str], Path, int]], empty: Path, rounds: int) -> list[Row]:
    runs: dict[str, list[Cost]] = {name: [] for name, *_ in specs}
    starts: dict[str, list[Cost]] = {name: [] for name, *_ in specs}
    for r in range(rounds):
        print(f"round {r + 1} of {rounds}", file=sys.stderr)
        order = specs[r % len(specs):] + specs[:r % len(specs)]
        for name, argv, corpus, _ in order:
            starts[name].append(child([a if a != "{IN}" else str(empty) for a in argv], empty))
            runs[name].append(child([a if a != "{IN}" else str(corpus) for a in argv], corpus))
            print(f"  {name}: {runs[name][-1].cpu:.2f} CPU-s (start {starts[name][-1].cpu:.2f})", file=sys.stderr)
    return [Row(name, n, statistics.median(c.cpu for c in runs[name]),
                statistics.median(c.cpu for c in starts[name]),
                max(c.rss_kib for c in runs[name]) / 1024) for name, _, _, n in specs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--public-events", type=int, default=50_000)
    ap.add_argument("--shape-events", type=int, default=200_000)  # 100k: the plain row moved 3.5-5.2 us between runs
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-public", action="store_true", help="leave out the public-collections row")
    ap.add_argument("--no-baseline", action="store_true", help="leave out the plain-Python row (~11 CPU-s)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    ap.add_argument("--public-hits", type=Path, metavar="FILE",
                    help="the public collections' alert rule ids per event on the first 20,000 events: "
                         "written to FILE, or compared with it when it exists (a run before a change, one after)")
    args = ap.parse_args()
    py = sys.executable
    cli = str(Path(py).parent / "shellsieve")
    engines = str(PEERS / "py_engines.py")
    public = not args.no_public and all(p.is_dir() for p in PUBLIC)
    run = [cli, "run", "--stats-interval", "0", "--log-level", "error"]
    pub_run = [*run, "--rules", "patterns", *sum((["--rules", str(p)] for p in PUBLIC), []), *selection_args()]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        corpus, empty = tmp / "corpus.ndjson", tmp / "empty.ndjson"
        empty.write_bytes(b"")
        print(f"writing the corpus ({args.events:,} events)...", file=sys.stderr)
        subprocess.run([py, str(PEERS / "gen_corpus.py"), str(corpus), str(args.events)], check=True,
                       stdout=subprocess.DEVNULL)
        n = sum(1 for _ in open(corpus, "rb"))
        size = corpus.stat().st_size
        # warm the database caches, so that no row pays a cold compile: `check` also builds the line
        # database's single-match twin, which a run compiles in a thread and stores only if it outlasts
        # that compile (13 CPU-s with the public collections: it was in every public round)
        checking = [cli, "check", "--quiet", "--format", "json"]
        subprocess.run(checking, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
        specs = [("shellsieve, shipped rules", run, corpus, n),
                 ("floor: one raw Hyperscan scan", [py, engines, "floor_hs_cmd", "{IN}", "--out", "/dev/null"],
                  corpus, n),
                 ("prototype: hs_raw", [py, engines, "hs_raw", "{IN}", "--out", "/dev/null"], corpus, n)]
        if not args.no_baseline:
            specs.append(("baseline: json + re per event", [py, engines, "re_loop", "{IN}", "--out", "/dev/null"],
                          corpus, n))
        if public:
            subprocess.run([*checking, *pub_run[len(run):]], stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
            pub = head(corpus, tmp / "public.ndjson", args.public_events)
            specs.append(("shellsieve, public collections", pub_run, pub, min(n, args.public_events)))
        rows = median_rows(specs, empty, args.rounds)
        hits = (alert_ids(pub_run, head(corpus, tmp / "hits.ndjson", 20_000))
                if public and args.public_hits else None)
        shape_files = shapes(corpus, args.shape_events, tmp)
        shape_rows = median_rows([(name, run, path, args.shape_events) for name, path in shape_files.items()],
                                 empty, args.rounds)

    by = {r.name: r for r in rows}
    ss, floor, proto = by["shellsieve, shipped rules"], by["floor: one raw Hyperscan scan"], by["prototype: hs_raw"]
    print(f"corpus: {n:,} events, {size / 1e6:.1f} MB ({size / n:.0f} B/event); medians of {args.rounds} rotated "
          f"rounds; steady = total CPU minus the same command's CPU on an empty input")
    print("| row | events | CPU-s | start CPU-s | steady CPU-s | events per CPU-s | peak RSS MiB | "
          "shipped / row |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{ss.rate / r.rate:.2f}" if r.events == n else "-"
        print(f"| {r.name} | {r.events:,} | {r.cpu:.2f} | {r.start:.2f} | {r.steady:.2f} | {r.rate:,.0f} | "
              f"{r.rss_mib:.1f} | {ratio} |")
    ratios = {
        "shipped_over_floor": ss.rate / floor.rate,
        "shipped_over_floor_total": n / ss.steady / (n / floor.cpu),
        "shipped_over_prototype": ss.rate / proto.rate,
        "shipped_over_prototype_total": n / ss.steady / (n / proto.cpu),
    }
    if "baseline: json + re per event" in by:
        ratios["shipped_over_baseline"] = ss.rate / by["baseline: json + re per event"].rate
    print("shipped steady / floor: {:.2f} (floor steady), {:.2f} (floor total CPU, as issue 23 counts it); "
          "/ prototype: {:.2f} (steady), {:.2f} (total)".format(
              ratios["shipped_over_floor"], ratios["shipped_over_floor_total"],
              ratios["shipped_over_prototype"], ratios["shipped_over_prototype_total"]))
    plain = shape_rows[0]
    print("\n| shape | events | steady CPU-s | CPU-us per event | x plain |")
    print("|---|---:|---:|---:|---:|")
    for r in shape_rows:
        print(f"| {r.name} | {r.events:,} | {r.steady:.2f} | {r.steady / r.events * 1e6:.1f} | "
              f"{r.steady / plain.steady:.2f} |")
    if hits is not None:
        compare_hits(args.public_hits, hits)
    if args.json:
        doc = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "events": n, "bytes": size, "rounds": args.rounds,
               "ratios": ratios,
               "rows": [{**asdict(r), "steady": r.steady, "events_per_cpu_s": r.rate} for r in rows],
               "shapes": [{**asdict(r), "steady": r.steady, "us_per_event": r.steady / r.events * 1e6,
                           "x_plain": r.steady / plain.steady} for r in shape_rows]}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
