"""Process lifecycle of `shellsieve run` as a real child with real pipes: end of input, stop
signals mid-stream, a reader that pauses, a reader that goes away, auditd events held at stop.

Every input line carries a sequence number; each test checks that every line the filter read leaves
once, in order, whole (each output line is strict JSON), and that the final `stopped` counters add
up (events_in == events_out + events_dropped + events_pending + events_undelivered, pending 0).

Exit codes: 0 at the end of input and on SIGTERM, 130 on SIGINT, 141 when the reader closed stdout;
SIGHUP reloads the rules (tests/reliability/test_reload.py) and never stops the filter.

Quick variants run by default (a few seconds each). The full sizes (200k lines, stdout blocked
for 10 s with RSS sampled) are marked slow:

    python -m pytest tests/reliability/test_lifecycle.py -m slow -q
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, rule_ids, seed_rule_ids

CLI = str(Path(sys.executable).parent / "shellsieve")
HIT_CMD = "php -r '$s=fsockopen(\\\"10.1.1.1\\\",4444);'"


def _line(i: int) -> bytes:
    """Input line `i`: mostly ECS, a rule hit every 50th, a plain command line every 37th."""
    if i % 37 == 36:
        return f"echo seq={i} /tmp/x\n".encode()
    if i % 50 == 49:
        return f'{{"seq":{i},"process":{{"command_line":"{HIT_CMD}"}}}}\n'.encode()
    return f'{{"seq":{i},"process":{{"command_line":"ls -l /tmp/f{i}"}}}}\n'.encode()


def _seq(line: bytes) -> int:
    """The sequence number of an output line; decoding strictly fails on a torn line."""
    doc = msgspec.json.decode(line)
    assert isinstance(doc, dict), line
    if "seq" in doc:
        if doc["seq"] % 50 == 49:
            assert rule_ids(doc) == [PHP_FSOCKOPEN], doc
        return int(doc["seq"])
    return int(doc["message"].split("seq=")[1].split()[0])


class _Drain(threading.Thread):
    """Reads a pipe into memory, pausing while `paused` is set."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.data = bytearray()
        self.paused = threading.Event()
        self.lock = threading.Lock()
        self.start()

    def run(self) -> None:
        while True:
            while self.paused.is_set():
                time.sleep(0.01)
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def lines(self) -> int:
        with self.lock:
            return self.data.count(b"\n")


class _Feed(threading.Thread):
    """Writes lines from `lines` in batches until they run out, `stop` is set or the pipe breaks."""

    def __init__(self, pipe: Any, lines: Iterator[bytes], batch: int = 200, close: bool = True) -> None:
        super().__init__(daemon=True)
        self.pipe, self.fd, self.lines, self.batch, self.close = pipe, pipe.fileno(), lines, batch, close
        self.stop = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                chunk = b"".join(x for _, x in zip(range(self.batch), self.lines))
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.fd, view):]
                time.sleep(0.001)  # a stream in flow, not one burst
        except (BrokenPipeError, OSError):
            return
        if self.close:
            self.pipe.close()


class Filter:
    """`shellsieve run` on the shipped rules with pipes on all three streams."""

    def __init__(self, cache_dir: Path, *args: str, drain: bool = True) -> None:
        self.proc = subprocess.Popen([CLI, "run", "--cache-dir", str(cache_dir), "--stats-interval", "0", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdin_fd = self.proc.stdin.fileno()
        if drain:
            self.out = _Drain(self.proc.stdout.fileno())
        self.err = _Drain(self.proc.stderr.fileno())

    def wait_lines(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.out.lines() < n:
            assert time.monotonic() < deadline, f"{self.out.lines()} of {n} lines came out"
            time.sleep(0.01)

    def finish(self, timeout: float = 20.0) -> tuple[int, list[bytes], list[dict[str, Any]]]:
        code = self.proc.wait(timeout)
        self.out.join(5)
        self.err.join(5)
        logs = [msgspec.json.decode(x) for x in bytes(self.err.data).splitlines()]
        return code, bytes(self.out.data).splitlines(keepends=True), logs

    def rss_kib(self) -> int:
        for row in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
        raise AssertionError("no VmRSS")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()  # type: ignore[union-attr]
            except OSError:
                pass


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def spawn(cache_dir: Path) -> Iterator[Any]:
    started: list[Filter] = []

    def make(*args: str, drain: bool = True) -> Filter:
        f = Filter(cache_dir, *args, drain=drain)
        started.append(f)
        return f

    yield make
    for f in started:
        f.kill()


def _seqs(out: list[bytes]) -> list[int]:
    assert all(x.endswith(b"\n") for x in out)
    return [_seq(x) for x in out]


def _stopped(logs: list[dict[str, Any]]) -> dict[str, Any]:
    final = logs[-1]
    assert final["event"] == "stopped", logs[-3:]
    assert final["events_in"] == (final["events_out"] + final["events_dropped"] + final["events_pending"]
                                  + final["events_undelivered"])
    assert final["events_pending"] == 0
    return final


def _count(n: int | None = None) -> Iterator[bytes]:
    i = 0
    while n is None or i < n:
        yield _line(i)
        i += 1


class TestEndOfInput:
    @pytest.mark.parametrize("n", [5_000, pytest.param(200_000, marks=pytest.mark.slow)])
    def test_every_line_once_in_order(self, spawn: Any, n: int) -> None:
        """Input closed: every line leaves once, in order, whole; exit 0; in == out."""
        f = spawn()
        _Feed(f.proc.stdin, _count(n))
        code, out, logs = f.finish(timeout=300)
        assert code == 0
        assert _seqs(out) == list(range(n))
        final = _stopped(logs)
        assert final["reason"] == "end_of_input"
        assert final["events_in"] == final["events_out"] == n


class TestStopSignals:
    @pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
    @pytest.mark.parametrize("lines", [3_000, pytest.param(100_000, marks=pytest.mark.slow)])
    def test_mid_stream_nothing_read_is_lost(self, spawn: Any, sig: int, code: int, lines: int) -> None:
        """A stop signal while input flows: every line read leaves, whole and in order, and `stopped` says
        why; the exit code is the documented one."""
        f = spawn()
        feed = _Feed(f.proc.stdin, _count(), close=False)
        f.wait_lines(lines)
        f.proc.send_signal(sig)
        got, out, logs = f.finish()
        feed.stop.set()
        assert got == code
        seqs = _seqs(out)
        assert seqs == list(range(len(seqs))) and len(seqs) >= lines
        final = _stopped(logs)
        assert final["reason"] == signal.Signals(sig).name.lower()
        assert final["events_in"] == final["events_out"] == len(seqs)
        assert final["malformed"]["partial_line"] == 0  # the writer kept going: the line begun was completed

    def test_sighup_does_not_stop_the_filter(self, spawn: Any) -> None:
        """SIGHUP mid-stream asks for a reload and does not stop the filter: every line still leaves
        at the end."""
        f = spawn()
        feed = _Feed(f.proc.stdin, _count(6_000))
        f.wait_lines(1_000)
        f.proc.send_signal(signal.SIGHUP)
        code, out, logs = f.finish()
        feed.join(5)
        assert code == 0
        assert _seqs(out) == list(range(6_000))
        assert any(x["event"] == "reload_requested" and x["trigger"] == "sighup" for x in logs)
        assert _stopped(logs)["reason"] == "end_of_input"

    def test_line_completed_within_the_grace_leaves_whole(self, spawn: Any) -> None:
        """SIGTERM with half a line read: the filter reads on until its newline and writes it whole."""
        f = spawn()
        os.write(f.stdin_fd, _line(0) + b'{"seq":1,"process":{"comm')
        f.wait_lines(1)
        f.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        os.write(f.stdin_fd, b'and_line":"ls"}}\n' + _line(2))
        code, out, logs = f.finish()
        assert code == 0
        seqs = _seqs(out)
        assert seqs[:2] == [0, 1] and seqs == list(range(len(seqs)))
        assert msgspec.json.decode(out[1]) == {"seq": 1, "process": {"command_line": "ls"}}
        final = _stopped(logs)
        assert final["malformed"]["partial_line"] == 0 and final["events_in"] == len(seqs)

    def test_line_never_completed_is_counted_partial(self, spawn: Any) -> None:
        """SIGTERM with half a line that never gets its newline: after the grace it leaves as
        `{"message": ...}`, counted under `partial_line`; the exit is prompt."""
        f = spawn()
        os.write(f.stdin_fd, _line(0) + b'{"seq":1,"process":{"comm')
        f.wait_lines(1)
        t0 = time.monotonic()
        f.proc.send_signal(signal.SIGTERM)
        code, out, logs = f.finish()
        assert time.monotonic() - t0 < 5
        assert code == 0
        assert out == [_line(0), b'{"message":"{\\"seq\\":1,\\"process\\":{\\"comm"}\n']
        final = _stopped(logs)
        assert final["malformed"]["partial_line"] == 1
        assert final["events_in"] == final["events_out"] == 2


    def test_whole_object_with_a_number_out_of_range_at_a_stop(self, spawn: Any) -> None:
        """SIGTERM with a whole object lacking only its newline, holding 1e400: it is an event, not a
        crash (the check that it is whole once raised msgspec's ValidationError out of the loop)."""
        f = spawn()
        os.write(f.stdin_fd, _line(0) + b'{"seq":1,"x":1e400}')
        f.wait_lines(1)
        f.proc.send_signal(signal.SIGTERM)
        code, out, logs = f.finish()
        assert code == 0
        assert out == [_line(0), b'{"seq":1,"x":1e400}\n']
        assert _stopped(logs)["events_in"] == 2


class TestBlockedStdout:
    @pytest.mark.parametrize("pause", [1.0, pytest.param(10.0, marks=pytest.mark.slow)])
    def test_sigterm_while_the_reader_pauses(self, spawn: Any, pause: float) -> None:
        """The reader stops reading (the filter blocks in its write, then in the feeder's), SIGTERM
        arrives, the reader resumes: every line read leaves whole, in order; memory stays bounded."""
        f = spawn()
        os.write(f.stdin_fd, _line(0))
        f.wait_lines(1)
        f.out.paused.set()
        time.sleep(0.05)
        n = 40_000 if pause < 5 else 400_000  # several times what the pipes on both sides hold
        feed = _Feed(f.proc.stdin, (_line(i) for i in range(1, n)), batch=500, close=False)
        time.sleep(0.3)
        rss0 = f.rss_kib()
        time.sleep(pause)
        rss1 = f.rss_kib()
        assert rss1 - rss0 < 32 * 1024, (rss0, rss1)  # blocked, not buffering the input
        f.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        f.out.paused.clear()
        code, out, logs = f.finish()
        feed.stop.set()
        assert code == 0
        seqs = _seqs(out)
        assert seqs == list(range(len(seqs)))
        final = _stopped(logs)
        assert final["reason"] == "sigterm" and final["events_in"] == final["events_out"] == len(seqs)


class TestConsumerGone:
    def test_reader_closes_stdout(self, spawn: Any) -> None:
        """The reader goes away: exit 141, `stopped` says `stdout_closed`, and events_out counts only
        what the pipe took (here: exactly what the reader read before closing)."""
        f = spawn(drain=False)
        assert f.proc.stdout is not None
        os.write(f.stdin_fd, b"".join(_line(i) for i in range(100)))
        got = b""
        deadline = time.monotonic() + 30
        while got.count(b"\n") < 100:
            assert time.monotonic() < deadline
            if select.select([f.proc.stdout], [], [], 0.1)[0]:
                got += os.read(f.proc.stdout.fileno(), 1 << 16)
        assert _seqs(got.splitlines(keepends=True)) == list(range(100))
        f.proc.stdout.close()
        try:
            os.write(f.stdin_fd, b"".join(_line(i) for i in range(100, 200)))
            f.proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        code = f.proc.wait(20)
        f.err.join(5)
        logs = [msgspec.json.decode(x) for x in bytes(f.err.data).splitlines()]
        assert code == 141
        final = _stopped(logs)
        assert final["reason"] == "stdout_closed"
        assert final["events_out"] == 100
        assert final["events_undelivered"] >= 1
        assert final["events_in"] == 100 + final["events_undelivered"]


class TestAuditdAtStop:
    @pytest.mark.parametrize("how", ["eof", "sigterm"])
    def test_held_event_leaves_at_once(self, spawn: Any, how: str) -> None:
        """An auditd event waiting for its EOE leaves at the stop, not after --audit-timeout."""
        from test_auditd import REAL

        f = spawn("--audit-timeout", "60")
        os.write(f.stdin_fd, _line(0))
        f.wait_lines(1)
        os.write(f.stdin_fd, "".join(x + "\n" for x in REAL[:-1]).encode())
        time.sleep(0.3)
        assert f.out.lines() == 1  # held for its EOE
        t0 = time.monotonic()
        if how == "eof":
            f.proc.stdin.close()  # type: ignore[union-attr]
        else:
            f.proc.send_signal(signal.SIGTERM)
        code, out, logs = f.finish(timeout=30)
        assert time.monotonic() - t0 < 5
        assert code == 0 and len(out) == len(REAL)
        assert seed_rule_ids(msgspec.json.decode(out[2])) == [PHP_FSOCKOPEN]
        final = _stopped(logs)
        assert final["events_in"] == final["events_out"] == len(REAL)
