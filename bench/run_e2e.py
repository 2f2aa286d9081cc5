"""End to end, ONE run, every figure also as a ratio within it (the machines are shared and noisy).

    python bench/run_e2e.py                      # 1,000,000 events (the README's figures)
    python bench/run_e2e.py --events 200000      # quicker

Every row is a child process reading a corpus file on stdin, stdout to /dev/null; CPU seconds and peak
RSS come from wait4(). Rows:

* floor: read+write - Python copying stdin to stdout unchanged;
* floor: raw scan (shipped / public) - one Hyperscan scan of the whole input with shellsieve's own
  database for those rules (the child loads the cached database; the scan alone is timed);
* baseline - plain Python: json.loads per line, `re` per rule per event, json.dumps of hits;
* eql engine - Elastic's `eql` PythonEngine running the two seed EQL rules (the event query and the
  sequence), one eql.Event per line;
* shellsieve run - the installed command, with the shipped rules, then with every loadable rule of
  ../shared/rulesets (Sigma + Elastic linux); also on the same events as auditd records and as plain
  command lines.

`events/s` counts the input lines per wall second of the child, start-up included. `steady` leaves
start-up out: shellsieve's own `uptime_s` (from its `stopped` event), the scan floors' scan time.
Ratios use steady rates. The machines are shared and their speed drifts by a third within minutes,
so the rows the targets compare (the floors, the baseline, eql, shellsieve with the shipped rules)
run `--repeat` times, interleaved round by round, and each keeps its fastest run; the long rows run
once. Then the latency row: one line written to a running `shellsieve run` whose input then pauses,
timed until it is read back (20 times).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from data import write_audit_corpus, write_cmdline_corpus, write_corpus  # noqa: E402  after the sys.path insert above

PUBLIC = [ROOT.parent / "shared" / "rulesets" / "sigma", ROOT.parent / "shared" / "rulesets" / "elastic" / "linux"]

FLOOR_COPY = """
import sys
r, w = sys.stdin.buffer.read1, sys.stdout.buffer.write
while True:
    b = r(1 << 16)
    if not b:
        break
    w(b)
"""

FLOOR_SCAN = """
import json, sys, time
from pathlib import Path
from shellsieve.cli import build
from shellsieve.compile.cache import default_cache_dir
paths = [Path(p) for p in sys.argv[1:]] or None
_, rs, _ = build(paths, default_cache_dir())
data = sys.stdin.buffer.read()
t0 = time.perf_counter()
rs.database.scan(data, match_event_handler=lambda *a: None)
scan_s = time.perf_counter() - t0
sys.stdout.buffer.write(data)
print(json.dumps({"steady_s": scan_s}), file=sys.stderr)
"""

# The six shipped rules as a plain Python program would write them: each rule's text tests as `re`
# searches on the decoded fields, the sequence kept in a dict.
BASELINE = r"""
import json, re, sys
PHP = re.compile(r'''php\s+-r\s+['"].*fsockopen\(\s*['"](?:\d{1,3}\.){3}\d{1,3}['"]\s*,\s*\d{1,5}\s*\)''')
PY = re.compile(r'''(?is)\bpython(?:3)?\b[\s\S]*?\bsocket\.socket\b[\s\S]*?\bconnect\s*\([\s\S]*?\)[\s\S]*?\bos\.dup2\s*\([\s\S]*?\)[\s\S]*?\bpty\.spawn\s*\(\s*["'](?:sh|bash)["']\s*\)''')
WEB_SHELL_NAME = re.compile(r"^(?:bash|dash|ash|zsh|python.*|perl.*|php.*)$", re.I)
WEB_PARENT = re.compile(r"^(?:apache|nginx|www|apache2|httpd|www-data)$", re.I)
CHILD_PARENT = re.compile(r"^(?:apache|nginx|apache2|httpd|lighttpd|caddy|php-fpm.*|mongrel_rails|haproxy|gunicorn|uwsgi|openresty|cherokee|h2o|resin|puma|unicorn|traefik|uvicorn|tornado|hypercorn|daphne|twistd|yaws|webfsd|httpd\.worker|flask|rails|mongrel|php-cgi|php-fcgi|php-cgi\.cagefs|catalina\.sh|hiawatha|lswsctrl)$")
CHILD_EXE = re.compile(r"^(?:/tmp/|/var/tmp/|/dev/shm/|\./|/run/|/var/run/|/boot/|/sys/|/lost\+found/|/proc/|/var/mail/|/var/www/|/home/|/root/)")
CHILD_NAME = re.compile(r"^(?:\..*|.*\.elf|.*\.sh|.*\.py|.*\.rb|.*\.pl|.*\.lua.*|.*\.php.*|\.js|systemd|cron|crond|nc|netcat|ncat|telnet|socat|openssl|nc\.openbsd|ngrok|nc\.traditional|az|gcloud|aws|whoami|ifconfig|ip|ss|top|htop|df|du|lsblk|lsof|tcpdump|strace|ltrace|curl|wget|dig|nslookup|host|nmap|arp|traceroute)$", re.I)
WEB_USERS = {"apache", "www-data", "httpd", "nginx", "lighttpd", "tomcat", "tomcat8", "tomcat9"}
RECON_PARENT = re.compile(r"\\(?:caddy|httpd|nginx|php-cgi|w3wp|ws_tomcatservice)\.exe$", re.I)
RECON = re.compile(r"perl --help|perl -h|python --help|python -h|python3 --help|python3 -h|wget --help", re.I)
SEQ_CHILD = re.compile(r"^(?:python.*|php.*|perl|ruby|lua.*|openssl|nc|netcat|ncat|telnet|awk)$", re.I)
SEQ_ARGS = re.compile(r"import.*pty.*spawn|import.*subprocess.*call|socket|TCPSocket\.(?:new|open)|fsockopen|/inet/tcp/", re.I)
LOCAL = re.compile(r"^(?:127\.|169\.254\.|22[4-9]\.|23\d\.|::1$)")
opened = {}
out = sys.stdout.write
for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        out(json.dumps({"message": line.rstrip("\n")}) + "\n")
        continue
    p = ev.get("process") or {}
    parent = p.get("parent") or {}
    user = ev.get("user") or {}
    cl = p.get("command_line") or ""
    name, pname = p.get("name") or "", parent.get("name") or ""
    cats = (ev.get("event") or {}).get("category") or []
    hits = [rid for rid, rx in (("100103", PHP), ("100620", PY)) if rx.search(cl)]
    if "process" in cats and WEB_SHELL_NAME.match(name) and WEB_PARENT.match(pname):
        hits.append("231876e7-4d1f-4d63-a47c-47dd1acdc1cb")
    if "process" in cats and parent.get("executable") and (
            CHILD_PARENT.match(pname) or user.get("name") in WEB_USERS or user.get("id") in ("33", "48", "498")) and (
            CHILD_EXE.match(p.get("executable") or "") or CHILD_NAME.match(name)):
        hits.append("f16fca20-4d6c-43f9-aec1-20b6de3b0aeb")
    if RECON_PARENT.search(parent.get("executable") or "") and RECON.search(cl):
        hits.append("f64e5c19-879c-4bae-b471-6d84c8339677")
    key = ((ev.get("host") or {}).get("id"), p.get("entity_id"))
    if "process" in cats and SEQ_CHILD.match(name) and any(SEQ_ARGS.search(a) for a in p.get("args") or []):
        opened[key] = True
    elif "network" in cats and key in opened and not LOCAL.match(str((ev.get("destination") or {}).get("ip"))):
        del opened[key]
        hits.append("76e4d92b-61c1-4a95-ab61-5fd94179a1ee")
    if hits:
        ev.setdefault("rule", {})["id"] = hits
        out(json.dumps(ev) + "\n")
    else:
        out(line)
"""

EQL_ENGINE = """
import ipaddress, json, sys, tomllib
from pathlib import Path
import eql
def cidrmatch(value, *networks):  # an Elasticsearch function eql's Python engine does not have
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
rules = [tomllib.loads(f.read_text())["rule"] for f in sorted(Path(sys.argv[1]).glob("*.toml"))]
texts = [r["query"] for r in rules if r.get("language") == "eql"]
with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
    queries = [eql.parse_query(t) for t in texts]
engine = eql.PythonEngine({"functions": {"cidrmatch": cidrmatch}})
hits = []
engine.add_output_hook(hits.append)
engine.add_queries(queries)
out = sys.stdout.write
for line in sys.stdin:
    doc = json.loads(line)
    kind = ((doc.get("event") or {}).get("category") or ["any"])[0]
    before = len(hits)
    engine.stream_event(eql.Event(kind, 0, doc))
    out(json.dumps(doc) + "\\n" if len(hits) > before else line)
engine.finalize()
"""


@dataclass
class Row:
    name: str
    lines: int
    size: int
    wall: float
    cpu: float
    rss_kib: int
    steady: float  # seconds, start-up left out


def _run(name: str, argv: list[str], corpus: Path, lines: int, tmp: Path) -> Row:
    err = tmp / "stderr"
    with open(corpus, "rb") as fin, open(os.devnull, "wb") as fout, open(err, "wb") as ferr:
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(fin.fileno(), 0)
            os.dup2(fout.fileno(), 1)
            os.dup2(ferr.fileno(), 2)
            os.execvp(argv[0], argv)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{name}: {argv} failed with status {status}:\n{err.read_text()[-2000:]}")
    steady = wall
    for raw in reversed(err.read_text().splitlines()):
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        steady = doc.get("steady_s") or doc.get("uptime_s") or wall
        break
    row = Row(name, lines, corpus.stat().st_size, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, steady)
    print(f"  {name}: {wall:.1f} s", file=sys.stderr)
    return row


def _latency(cli: str, n: int = 20) -> list[float]:
    """Seconds from writing one line to a running filter (input then idle) to reading it back."""
    proc = subprocess.Popen([cli, "run", "--stats-interval", "0", "--log-level", "error"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b'{"process":{"command_line":"php -r \'$s=fsockopen(\\"10.1.1.1\\",4444);\'"}}\n'
    out = []
    try:
        for i in range(n + 1):
            t0 = time.perf_counter()
            proc.stdin.write(line)
            proc.stdin.flush()
            buf = b""
            while not buf.endswith(b"\n"):
                if not select.select([fd], [], [], 30)[0]:
                    raise SystemExit("latency: no output within 30 s")
                buf += os.read(fd, 65536)
            if i:  # the first line also waits for start-up
                out.append(time.perf_counter() - t0)
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--no-public", action="store_true", help="leave out the rows with the public rulesets")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each compared row; the fastest is kept")
    ap.add_argument("--unique-command-lines", action="store_true",
                    help="append a unique token to every ECS command line (no field scan is then remembered)")
    args = ap.parse_args()
    py = sys.executable
    cli = str(Path(py).parent / "shellsieve")
    public = not args.no_public and all(p.is_dir() for p in PUBLIC)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ecs, audit, cmd = tmp / "events.ndjson", tmp / "audit.log", tmp / "cmdline.log"
        print(f"writing the corpora ({args.events:,} events)...", file=sys.stderr)
        write_corpus(str(ecs), args.events, unique=args.unique_command_lines)
        write_audit_corpus(str(audit), args.events)
        write_cmdline_corpus(str(cmd), args.events)
        n = args.events
        pub = [str(p) for p in PUBLIC]
        # warm the database cache for both rule sets, so that no row pays a cold compile
        subprocess.run([cli, "check", "--quiet"], check=True, capture_output=True)
        if public:
            subprocess.run([cli, "check", "--quiet", *sum((["--rules", p] for p in pub), [])],
                           check=True, capture_output=True)
        run = [cli, "run", "--stats-interval", "0"]  # info: the `stopped` event carries uptime_s
        compared = [
            ("floor: read+write (python)", [py, "-c", FLOOR_COPY], ecs),
            ("floor: raw scan, shipped db", [py, "-c", FLOOR_SCAN], ecs),
            ("baseline: json + re per rule", [py, "-c", BASELINE], ecs),
            ("eql engine, seed EQL rules", [py, "-c", EQL_ENGINE, str(ROOT / "patterns" / "elastic")], ecs),
            ("shellsieve, shipped rules", run, ecs),
        ]
        once = []
        if public:
            once += [("floor: raw scan, public db", [py, "-c", FLOOR_SCAN, *pub], ecs),
                     ("shellsieve, public rulesets", [*run, *sum((["--rules", p] for p in pub), [])], ecs)]
        once += [("shellsieve, shipped, auditd", run, audit), ("shellsieve, shipped, cmdlines", run, cmd)]
        rows: dict[str, Row] = {}
        for round_ in range(max(1, args.repeat)):
            print(f"round {round_ + 1} of {args.repeat}", file=sys.stderr)
            for name, argv, corpus in compared:
                row = _run(name, argv, corpus, n, tmp)
                if name not in rows or row.steady < rows[name].steady:
                    rows[name] = row
        for name, argv, corpus in once:
            lines = sum(1 for _ in open(corpus, "rb")) if corpus is not ecs else n
            rows[name] = _run(name, argv, corpus, lines, tmp)
        lat = _latency(cli)

    def rate(r: Row) -> float:
        return r.lines / r.steady

    base, eqlr = rows["baseline: json + re per rule"], rows["eql engine, seed EQL rules"]
    print(f"corpus: {n:,} ECS events, {rows['floor: read+write (python)'].size / 1e6:.1f} MB "
          f"({rows['floor: read+write (python)'].size / n:.0f} B/event); the same events as "
          f"{rows['shellsieve, shipped, auditd'].lines:,} auditd records and "
          f"{rows['shellsieve, shipped, cmdlines'].lines:,} command lines"
          + ("; every ECS command line made unique" if args.unique_command_lines else ""))
    head = (f"{'row':32} {'events/s':>10} {'steady ev/s':>12} {'MB/s':>7} {'cpu s':>7} {'rss MiB':>8} "
            f"{'/scan floor':>11} {'x baseline':>10} {'x eql':>7}")
    print(head)
    for name, r in rows.items():
        floor = rows.get("floor: raw scan, public db") if "public" in name else rows["floor: raw scan, shipped db"]
        same_corpus = r.size == base.size
        ratios = (f"{rate(r) / rate(floor):11.2f} {rate(r) / rate(base):10.1f} {rate(r) / rate(eqlr):7.1f}"
                  if same_corpus and floor else f"{'-':>11} {'-':>10} {'-':>7}")
        print(f"{name:32} {r.lines / r.wall:10,.0f} {rate(r):12,.0f} {r.size / r.steady / 1e6:7.1f} {r.cpu:7.2f} "
              f"{r.rss_kib / 1024:8.1f} {ratios}")
    print(f"latency, one line into a paused input (20 runs): median {statistics.median(lat) * 1e3:.1f} ms, "
          f"max {max(lat) * 1e3:.1f} ms")
    print(f"(the first {len(compared)} rows: fastest of {max(1, args.repeat)} interleaved runs; the others: one run)")


if __name__ == "__main__":
    main()
