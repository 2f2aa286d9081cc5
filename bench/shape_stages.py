"""Where a shape's CPU goes, stage by stage, in process (issue 23 item 3: what bounds each shape).

    python bench/shape_stages.py                      # the four shapes of bench/line_rate.py, shipped rules
    python bench/shape_stages.py --events 20000 --public   # also the public collections on the corpus

The shape files are bench/line_rate.py's (drawn from `../shared/peers/gen_corpus.py`'s corpus and its
ground truth). Each stage runs over the whole file in 64 KiB blocks with one matcher, as `run` feeds
it, and is timed with `time.process_time` (this process's user + system CPU), least of `--repeat`
runs; the garbage collector is frozen after the build, as `run` does. Stages, in CPU-us per event:

* `scan`: the line database over each block with no callback: Hyperscan's own work;
* `hits`: the same scan with the matcher's callback (one Python call per hit);
* `spans`: the candidate lines and their rules from the hits (key and join checks);
* `json`: the block checked as JSON objects, one msgspec call;
* `evaluate`: every candidate line in order, decode to output line;
* `whole`: `BlockMatcher.process`, all of it; `rest` is what the stages above leave out (the copy of
  the lines between candidates, the join of the output; a least time of each stage apart may sum
  above the whole's, so a small negative is noise).

Then what one candidate line costs: a quiet one and an alert one (each kind timed on its own), the
decode, the duplicate-key test, the rules' checks, enrich + encode (per alert line), and `C floor`:
the C calls a candidate cannot do without in this design (decode, re-encode for the duplicate test,
an alert's decode and encode).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from line_rate import PEERS, PUBLIC, ROOT, selection_args, shapes  # noqa: E402  after the sys.path insert above
from shellsieve.build import build  # noqa: E402  after the sys.path insert above
from shellsieve.cli import _selection, parser  # noqa: E402  after the sys.path insert above
from shellsieve.compile.cache import default_cache_dir  # noqa: E402  after the sys.path insert above
from shellsieve.compile.ruleset import Ruleset  # noqa: E402  after the sys.path insert above
from shellsieve.events.tolerant import may_hide_duplicates  # noqa: E402  after the sys.path insert above
from shellsieve.run.enrich import alert_line, enrich  # noqa: E402  after the sys.path insert above
from shellsieve.run.match import BlockMatcher, _count_objects  # noqa: E402  after the sys.path insert above
from shellsieve.run.stats import Stats  # noqa: E402  after the sys.path insert above

BLOCK = 1 << 16
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


def blocks_of(path: Path) -> list[bytes]:
    """The file in blocks of whole lines of at most 64 KiB, as the framer hands them on."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        end = data.rfind(b"\n", pos, pos + BLOCK)
        if end < pos:
            end = data.find(b"\n", pos)
        out.append(data[pos:end + 1])
        pos = end + 1
    return out


def least(fn: Callable[[], Any], repeat: int) -> float:
    """Least CPU-seconds of `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def scan_only(rs: Ruleset, blocks: list[bytes]) -> None:
    """The line database over the blocks with no callback at all (a line at a time where the
    matcher scans so, compile/lines.py PER_LINE_JOINS): what Hyperscan itself costs."""
    scan = rs.database.scan
    for b in blocks:
        if rs.per_line:
            for line in b.splitlines():
                scan(line)  # type: ignore[call-arg]  # the stub requires a handler; Hyperscan takes none
        else:
            scan(b)  # type: ignore[call-arg]  # as above


def candidates(m: BlockMatcher, blocks: list[bytes]) -> list[tuple[bytes, Any, Any]]:
    """(line, candidate rules, pattern ids) of every candidate line, as the fast path finds them."""
    out = []
    for b in blocks:
        for start, (end, rules, pids, late) in sorted((m._candidate_spans(b) or {}).items()):
            rules = m._with_live(rules, late) if late else rules
            if rules or (pids is not None and m.rs.reserved_id in pids):
                out.append((b[start:end], rules, pids))
    return out


def stages(rs: Ruleset, path: Path, repeat: int) -> dict[str, float]:
    """CPU-seconds of each stage over the file at `path`, and its counts."""
    blocks = blocks_of(path)
    m = BlockMatcher(rs, Stats())
    for b in blocks:  # warm: the field-scan memo, the adaptive term order, the key sets' order
        m.process(b)
    cands = candidates(m, blocks)
    out = {"events": float(sum(b.count(b"\n") for b in blocks)), "candidates": float(len(cands))}
    # a line that leaves as it came had no alert (the shapes hold no `shellsieve` key to move aside)
    came = [m._evaluate(line, rules, pids) == line + b"\n" for line, rules, pids in cands]
    alert = [c for c, same in zip(cands, came) if not same]
    quiet = [c for c, same in zip(cands, came) if same]
    out["alerts"] = float(len(alert))
    out["scan"] = least(lambda: scan_only(rs, blocks), repeat)
    out["hits"] = least(lambda: [m._raw_hits(b) for b in blocks], repeat)
    out["spans"] = least(lambda: [m._candidate_spans(b) for b in blocks], repeat)
    out["json"] = least(lambda: [_count_objects(b) for b in blocks], repeat)
    out["evaluate"] = least(lambda: [m._evaluate(line, rules, pids) for line, rules, pids in cands], repeat)
    out["quiet"] = least(lambda: [m._evaluate(line, rules, pids) for line, rules, pids in quiet], repeat)
    out["alert"] = least(lambda: [m._evaluate(line, rules, pids) for line, rules, pids in alert], repeat)
    out["whole"] = least(lambda: [m.process(b) for b in blocks], repeat)
    out.update(per_candidate(m, cands, alert, repeat))
    return out


def per_candidate(m: BlockMatcher, cands: list[tuple[bytes, Any, Any]], alert: list[tuple[bytes, Any, Any]],
                  repeat: int) -> dict[str, float]:
    """CPU-seconds over all candidates of each part of a candidate's evaluation."""
    docs = [_decode(line) for line, _, _ in cands]
    hits = [m._hits(d, rules, pids, d) for (_, rules, pids), d in zip(cands, docs)]
    alerted = [(line, h) for (line, _, _), h in zip(cands, hits) if h]
    lines = [line for line, _, _ in cands]

    def decode() -> None:
        for line in lines:  # not kept: a list of 20,000 dicts would time the collector
            _decode(line)

    def output() -> None:
        for line, h in alerted:
            alert_line(enrich(_decode(line), h), h, False)

    def floor() -> None:  # each candidate decoded and encoded again; each alert line decoded and encoded
        for line in lines:
            _encode(_decode(line))
        for line, _ in alerted:
            _encode(_decode(line))

    return {
        "decode": least(decode, repeat),
        "duplicates": least(lambda: [may_hide_duplicates(line, d) for line, d in zip(lines, docs)], repeat),
        "checks": least(lambda: [m._hits(d, rules, pids, d) for (_, rules, pids), d in zip(cands, docs)], repeat),
        "output": least(output, repeat) - least(lambda: [_decode(line) for line, _ in alerted], repeat),
        "c_floor": least(floor, repeat),
        "alerted": float(len(alerted)),
    }


def ruleset(public: bool) -> Ruleset:
    """The shipped rules, or the public collections as bench/line_rate.py selects them (without the
    exceptions file: the matcher here runs no gates)."""
    argv = ["run"]
    if public:
        argv += ["--rules", str(ROOT / "patterns"), *sum((["--rules", str(p)] for p in PUBLIC), []),
                 *[a for a in selection_args() if not a.startswith("--exceptions")]]
    args = parser().parse_args(argv)
    rs = build(args.rules, default_cache_dir(), _selection(args))[1]  # as `run` finds it: warm after `check`
    if rs.single_database is not None:
        rs.single_database.database()  # not timed: `check` stores it, a run loads it at start
    return rs


STAGES = ("scan", "hits", "spans", "json", "evaluate", "whole")
PARTS = ("decode", "duplicates", "checks", "output", "c_floor")


def table(rows: dict[str, dict[str, float]]) -> None:
    """Per event: every stage; per candidate: every part; and each shape's whole against the plain one's."""
    plain = rows[next(iter(rows))]["whole"] / rows[next(iter(rows))]["events"]
    print("CPU-us per event (least of the runs):\n")
    print("| shape | events | candidates | alerts | " + " | ".join(STAGES) + " | rest | x plain |")
    print("|---|" + "---:|" * (len(STAGES) + 5))
    for name, r in rows.items():
        per = {k: r[k] / r["events"] * 1e6 for k in STAGES}
        rest = per["whole"] - per["spans"] - per["json"] - per["evaluate"]
        print(f"| {name} | {r['events']:,.0f} | {r['candidates']:,.0f} | {r['alerts']:,.0f} | "
              + " | ".join(f"{per[k]:.2f}" for k in STAGES) + f" | {rest:.2f} | {per['whole'] / (plain * 1e6):.2f} |")
    print("\nCPU-us per candidate line (output: per alert line; C floor: decode, re-encode, the alert's encode):\n")
    print("| shape | quiet line | alert line | " + " | ".join(PARTS) + " |")
    print("|---|" + "---:|" * (len(PARTS) + 2))
    for name, r in rows.items():
        cells = [_per(r["quiet"], r["candidates"] - r["alerts"], 1), _per(r["alert"], r["alerts"], 1)]
        cells += [_per(r[k], r["alerted"] if k == "output" else r["candidates"], 2) for k in PARTS]
        print(f"| {name} | " + " | ".join(cells) + " |")


def _per(seconds: float, n: float, digits: int) -> str:
    """Microseconds each, or a dash where there were none (a least time of nothing is noise)."""
    return f"{seconds / n * 1e6:.{digits}f}" if n else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events per shape file (default: %(default)s)")
    ap.add_argument("--corpus-events", type=int, default=200_000, help="events of the corpus drawn from")
    ap.add_argument("--repeat", type=int, default=5, help="runs per stage; the least counts")
    ap.add_argument("--public", action="store_true",
                    help="also the public collections (deploy/selection/public-collections.args, without its "
                         "exceptions) on the first --events events of the corpus; run `shellsieve check` with "
                         "them first, or the first build compiles")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        corpus = tmp / "corpus.ndjson"
        subprocess.run([sys.executable, str(PEERS / "gen_corpus.py"), str(corpus), str(args.corpus_events)],
                       check=True, stdout=subprocess.DEVNULL)
        files = shapes(corpus, args.events, tmp)
        rs = ruleset(public=False)
        gc.collect()
        gc.freeze()  # as `run` does after its build: the rules stay out of the collector's walks
        rows = {name: stages(rs, path, args.repeat) for name, path in files.items()}
        if args.public:
            pub = ruleset(public=True)
            gc.collect()
            gc.freeze()
            first = tmp / "first.ndjson"
            with open(corpus, "rb") as fin:
                first.write_bytes(b"".join(line for _, line in zip(range(args.events), fin)))
            rows["corpus, public collections"] = stages(pub, first, args.repeat)
    table(rows)


if __name__ == "__main__":
    main()
