"""Hot reload under load: throughput while a large rule set compiles, and many reloads in a stream.

    python bench/reload.py                          # both parts
    python bench/reload.py --part compile           # the public collections recompiled under load
    python bench/reload.py --part stream --reloads 20

compile: `shellsieve run` with the public collections (patterns/, ../shared/rulesets/sigma and
  elastic/linux, the recommended selection: 23k patterns) reads an endless stream of the bench
  corpus (bench/data.py) from a pipe kept full. After a steady stretch, a marker rule file beside
  them is changed and SIGHUP sent: the compile process rebuilds every database (the key changed), the
  filter goes on with the old ones, then swaps. Events out per wall second are counted from the
  filter's stdout: steady (before the SIGHUP), during the reload (SIGHUP to `reloaded`), after; and
  the longest gap between two reads of its output (the swap's pause).
stream: the shipped rules, numbered events written as fast as the filter reads them, `--reloads`
  SIGHUPs each after a real rule change: events lost or out of order (must be 0), RSS before the
  first reload and after the last, seconds per reload.

Wall-clock rates on a shared 2-core machine: the ratio within one run is the figure that holds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import write_corpus  # noqa: E402  after the sys.path insert above

ROOT = Path(__file__).resolve().parents[1]
RULESETS = ROOT.parent / "shared" / "rulesets"
CLI = str(Path(sys.executable).parent / "shellsieve")
MARKER = """[metadata]
creation_date = "2026/12/04"
maturity = "production"

[rule]
author = ["shellsieve bench"]
description = "A command line holding the bench's token: changed before each reload."
name = "reload bench marker"
risk_score = 73
rule_id = "5a1d0c3e-8f7b-4d2a-9c6e-0b1a2c3d4e5f"
severity = "high"
type = "query"
language = "kuery"
index = ["logs-endpoint.events.*"]
query = 'process.command_line : *{token}*'
"""


class Filter:
    """A `shellsieve run` child: stdin fed from `source` chunks by a thread, stdout lines counted
    with their arrival times, stderr kept as JSON log events."""

    def __init__(self, args: list[str], source: Any) -> None:
        self.proc = subprocess.Popen([CLI, "run", "--stats-interval", "0", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stop_feed = threading.Event()
        self.marks: list[tuple[float, int]] = []  # (time, lines out so far) per read
        self.logs: list[dict[str, Any]] = []
        self.lines = 0
        self.tail = b""
        self.keep = False  # keep the output bytes (stream part)
        self.out = bytearray()
        threading.Thread(target=self._feed, args=(source,), daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._err, daemon=True).start()

    def _feed(self, source: Any) -> None:
        fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        try:
            for chunk in source:
                if self.stop_feed.is_set():
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        except OSError:
            pass
        self.proc.stdin.close()  # type: ignore[union-attr]

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 1 << 20):
            self.lines += chunk.count(b"\n")
            self.marks.append((time.monotonic(), self.lines))
            if self.keep:
                self.out += chunk

    def _err(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            try:
                self.logs.append(json.loads(line))
            except ValueError:
                self.logs.append({"event": "stderr", "text": line.decode(errors="replace")})

    def wait_log(self, name: str, count: int = 1, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got = [x for x in self.logs if x.get("event") in (name, "reload_failed", "startup_failed")]
            bad = [x for x in got if x["event"] != name]
            if bad:
                raise SystemExit(f"filter logged {bad[0]}")
            if len(got) >= count:
                return got[count - 1]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"no {name}: exit {self.proc.poll()}; last logs {self.logs[-3:]}")
            time.sleep(0.05)

    def rate(self, t0: float, t1: float) -> float:
        """Lines out per second between two times."""
        before = max((n for t, n in self.marks if t <= t0), default=0)
        upto = max((n for t, n in self.marks if t <= t1), default=0)
        return (upto - before) / max(t1 - t0, 1e-9)

    def longest_gap(self, t0: float, t1: float) -> float:
        times = [t for t, _ in self.marks if t0 <= t <= t1]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    def rss_kib(self) -> int:
        for row in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
        return 0

    def stop(self) -> int:
        self.stop_feed.set()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)


def _endless(data: bytes, chunk: int = 1 << 16) -> Any:
    while True:
        for i in range(0, len(data), chunk):
            yield data[i:i + chunk]


def part_compile(steady_s: float, events: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="shellsieve-bench-reload-"))
    try:
        corpus = tmp / "corpus.ndjson"
        write_corpus(str(corpus), events)
        marker = tmp / "marker"
        marker.mkdir()
        (marker / "marker.toml").write_text(MARKER.format(token=f"bench-{time.time_ns()}"))
        selection = [a.split("#")[0].strip() for a in (ROOT / "deploy/selection/public-collections.args")
                     .read_text().splitlines() if a.split("#")[0].strip()]
        args = ["--rules", str(ROOT / "patterns"), "--rules", str(RULESETS / "sigma"),
                "--rules", str(RULESETS / "elastic" / "linux"), "--rules", str(marker),
                "--cache-dir", str(tmp / "cache"), *selection]
        os.chdir(ROOT)  # the selection's exceptions path is relative to the repository
        print("starting with the public collections (a cold compile first) ...", flush=True)
        f = Filter(args, _endless(corpus.read_bytes()))
        started = f.wait_log("started")
        time.sleep(steady_s)
        (marker / "marker.toml").write_text(MARKER.format(token=f"bench-{time.time_ns()}"))
        t_hup = time.monotonic()
        f.proc.send_signal(signal.SIGHUP)
        done = f.wait_log("reloaded")
        t_done = time.monotonic()
        time.sleep(steady_s)
        t_end = time.monotonic()
        f.stop()
        steady = f.rate(t_hup - steady_s, t_hup)
        during = f.rate(t_hup, t_done)
        return {"patterns": started["patterns"], "rules": started["rules"], "steady_events_per_s": round(steady),
                "during_reload_events_per_s": round(during), "after_events_per_s": round(f.rate(t_done, t_end)),
                "during_over_steady": round(during / steady, 3), "reload_wall_s": round(t_done - t_hup, 2),
                "compile_cpu_s": done["compile_cpu_s"], "load_s": done["load_s"], "swap_s": done["swap_s"],
                "gc_s": done["gc_s"], "longest_output_gap_s": round(f.longest_gap(t_hup, t_done + 1), 3)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _numbered(n_max: int | None = None) -> Any:
    i = 0
    while n_max is None or i < n_max:
        block = []
        for _ in range(500):
            if i % 50 == 49:
                cmd = "php -r '$s=fsockopen(\\\"10.1.1.1\\\",4444);'"
            else:
                cmd = f"ls -l /tmp/f{i}"
            block.append(f'{{"seq":{i},"process":{{"command_line":"{cmd}"}}}}\n')
            i += 1
        yield "".join(block).encode()


def part_stream(reloads: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="shellsieve-bench-reload-"))
    try:
        rules = tmp / "rules"
        shutil.copytree(ROOT / "patterns", rules, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
        (rules / "elastic" / "marker.toml").write_text(MARKER.format(token="bench-0"))
        f = Filter(["--rules", str(rules), "--cache-dir", str(tmp / "cache")], _numbered())
        f.keep = True
        f.wait_log("started")
        time.sleep(2)
        rss_before = f.rss_kib()
        seconds = []
        for k in range(1, reloads + 1):
            (rules / "elastic" / "marker.toml").write_text(MARKER.format(token=f"bench-{k}"))
            t0 = time.monotonic()
            f.proc.send_signal(signal.SIGHUP)
            f.wait_log("reloaded", k)
            seconds.append(time.monotonic() - t0)
        rss_after = f.rss_kib()
        code = f.stop()
        out = bytes(f.out).splitlines()
        seqs = [json.loads(x)["seq"] for x in out]
        stopped = next(x for x in f.logs if x["event"] == "stopped")
        missing = len(set(range(len(seqs))) - set(seqs))
        return {"exit": code, "reloads_ok": stopped["reloads"]["ok"], "reloads_failed": stopped["reloads"]["failed"],
                "events_in": stopped["events_in"], "events_out": len(out),
                "lost": stopped["events_in"] - len(out), "out_of_order": sum(a > b for a, b in zip(seqs, seqs[1:])),
                "missing_seq": missing, "rss_kib_before": rss_before, "rss_kib_after": rss_after,
                "seconds_per_reload_median": round(sorted(seconds)[len(seconds) // 2], 3)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("compile", "stream", "both"), default="both")
    ap.add_argument("--reloads", type=int, default=20)
    ap.add_argument("--steady", type=float, default=15.0, help="seconds of steady state before and after")
    ap.add_argument("--events", type=int, default=50_000, help="corpus size (streamed in a loop)")
    args = ap.parse_args()
    if args.part in ("stream", "both"):
        print(json.dumps({"stream": part_stream(args.reloads)}), flush=True)
    if args.part in ("compile", "both"):
        print(json.dumps({"compile": part_compile(args.steady, args.events)}), flush=True)


if __name__ == "__main__":
    main()
