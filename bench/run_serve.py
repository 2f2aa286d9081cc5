"""`shellsieve serve` over loopback HTTP and TCP against `shellsieve run` on a pipe: same corpus, one run.

    python bench/run_serve.py                   # 200,000 events
    python bench/run_serve.py --events 50000    # quicker

Each row is the real command in a child process; its CPU seconds (user + system) come from wait4().
Start-up (imports, rule load from the cache, binding) is measured by a row with no events and taken
off, so the figure is CPU-seconds per event of the filtering itself. The peers (sender, downstream)
are separate processes and not counted:

* run | pipe    - `cat corpus | shellsieve run | cat`: pipes on both sides;
* serve tcp     - a sender writes the corpus to `--listen tcp://`, serve forwards to a TCP sink;
* serve http    - a sender POSTs the corpus in bodies of --batch lines, one request at a time
                  (Vector's http sink with request.concurrency = 1), each answered once delivered;
                  serve forwards with `--forward http://` to an HTTP server answering 200.

Every row must deliver every line (the sink counts them) or the bench fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import write_corpus  # noqa: E402  after the sys.path insert above

CLI = str(Path(sys.executable).parent / "shellsieve")

TCP_SINK = r"""
import socket, sys
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
n = 0
want = int(sys.argv[2])
while n < want:
    conn, _ = srv.accept()
    while n < want:
        b = conn.recv(1 << 20)
        if not b:
            break
        n += b.count(b"\n")
print(n, flush=True)
"""

HTTP_SINK = r"""
import sys
from aiohttp import web
want = int(sys.argv[2])
n = 0
async def post(req):
    global n
    n += (await req.read()).count(b"\n")
    if n >= want:
        print(n, flush=True)
    return web.Response(status=200)
app = web.Application(client_max_size=1 << 30)
app.router.add_post("/", post)
print("ready", flush=True)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

TCP_SEND = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "rb") as f:
    while b := f.read(1 << 16):
        s.sendall(b)
s.close()
"""

HTTP_SEND = r"""
import asyncio, sys
import aiohttp
async def main():
    lines = open(sys.argv[2], "rb").read().splitlines(keepends=True)
    step = int(sys.argv[3])
    async with aiohttp.ClientSession() as s:
        for i in range(0, len(lines), step):
            while True:
                async with s.post(f"http://127.0.0.1:{sys.argv[1]}/", data=b"".join(lines[i:i + step]),
                                  headers={"Content-Type": "application/x-ndjson"}) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.05)
asyncio.run(main())
"""


def _ports(n: int) -> list[int]:
    """n distinct free ports (all bound at once: one at a time, the kernel may hand out one twice)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


SYS: dict[int, float] = {}  # pid -> system CPU seconds, for the report's split


def _cpu(proc: subprocess.Popen[bytes]) -> float:
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    SYS[proc.pid] = ru.ru_stime
    return ru.ru_utime + ru.ru_stime


def _wait_listening(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if b'"listening"' in line:
            return
    raise SystemExit("serve did not start")


def run_pipe(corpus: Path | None) -> float:
    """`cat corpus | shellsieve run | cat > /dev/null`: pipes on both sides, as a shipper's exec runs it."""
    feeder = subprocess.Popen(["cat", str(corpus or os.devnull)], stdout=subprocess.PIPE)
    with open(os.devnull, "wb") as null:
        drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=null)
        p = subprocess.Popen([CLI, "run", "--stats-interval", "0"], stdin=feeder.stdout, stdout=drain.stdin,
                             stderr=subprocess.DEVNULL)
        assert feeder.stdout is not None and drain.stdin is not None
        feeder.stdout.close()
        drain.stdin.close()
        cpu = _cpu(p)
        feeder.wait()
        drain.wait()
    return cpu


def run_serve(kind: str, corpus: Path | None, lines: int, batch: int) -> float:
    lport, fport = _ports(2)
    sink = subprocess.Popen([sys.executable, "-c", TCP_SINK if kind == "tcp" else HTTP_SINK, str(fport), str(lines)],
                            stdout=subprocess.PIPE)
    assert sink.stdout is not None
    sink.stdout.readline()
    fwd = f"tcp://127.0.0.1:{fport}" if kind == "tcp" else f"http://127.0.0.1:{fport}/"
    serve = subprocess.Popen([CLI, "serve", "--listen", f"{kind}://127.0.0.1:{lport}", "--forward", fwd,
                              "--stats-interval", "0", "--batch-events", str(batch)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_listening(serve)
    if corpus is not None:
        sender = subprocess.run([sys.executable, "-c", TCP_SEND if kind == "tcp" else HTTP_SEND, str(lport),
                                 str(corpus), str(batch)], check=True)
        got = int(sink.stdout.readline())
        if got != lines:
            raise SystemExit(f"serve {kind}: {got} of {lines} lines delivered")
        del sender
    serve.send_signal(signal.SIGTERM)
    assert serve.stderr is not None
    serve.stderr.read()
    cpu = _cpu(serve)
    sink.kill()
    sink.wait()
    if serve.returncode != 0:
        raise SystemExit(f"serve {kind} exited {serve.returncode}")
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000, help="lines per HTTP body and per forwarded batch")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each row keeps its least CPU")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.ndjson"
        write_corpus(str(corpus), args.events)
        n = args.events
        rows = {"run | pipe": lambda c: run_pipe(c), "serve tcp": lambda c: run_serve("tcp", c, n, args.batch),
                "serve http": lambda c: run_serve("http", c, n, args.batch)}
        best: dict[str, float] = {}
        idles: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.repeat):  # interleaved rounds: drift hits every row alike
            for name, fn in rows.items():
                idles[name].append(fn(None))
                best[name] = min(best.get(name, 1e9), fn(corpus))
        # the typical start-up (median), not the luckiest: the least of it would flatter no row
        idle = {name: statistics.median(v) for name, v in idles.items()}
    print(f"{n} events (bench/data.py corpus), shipped rules; CPU = user + system of the shellsieve process, "
          f"least of {args.repeat} interleaved rounds; start-up (the median of {args.repeat} runs with no events) "
          "taken off\n")
    print(f"{'row':<12} {'CPU s':>8} {'start-up s':>10} {'us/event':>9} {'x pipe':>7}")
    pipe = (best["run | pipe"] - idle["run | pipe"]) / n
    for name in rows:
        per = (best[name] - idle[name]) / n
        print(f"{name:<12} {best[name]:>8.3f} {idle[name]:>10.3f} {per * 1e6:>9.2f} {per / pipe:>7.2f}")


if __name__ == "__main__":
    main()
