"""--metrics-addr: /metrics scraped with a real HTTP client while `run` and `serve` filter events,
/healthz and /readyz, and the start refused for a bad address or a port in use."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import PATTERNS, ROOT
from serve.peers import free_port
from shellsieve.compile.ruleset import compile_rules
from shellsieve.rules.discover import load_rules
from shellsieve.run.engine import Engine
from shellsieve.run.metrics import Metrics, MetricsThread, parse_addr
from shellsieve.settings import Settings

CLI = str(Path(sys.executable).parent / "shellsieve")
EXAMPLES = (ROOT / "examples" / "events.ndjson").read_bytes()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels), parsed with the library's parser."""
    status, text = _get(base + "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _until(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def _logs(raw: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in raw.splitlines() if line.startswith(b"{")]


def _events(m: dict[Any, float], direction: str) -> float:
    return m[("shellsieve_events_total", (("direction", direction),))]


@pytest.fixture(scope="module")
def engine() -> Engine:
    rules, _ = load_rules([PATTERNS])
    return Engine(compile_rules(rules)[0], Settings())


class TestHealth:
    def test_readyz_503_until_the_engine_is_in_and_again_once_stopping(self, engine: Engine) -> None:
        """/healthz answers 200 throughout; /readyz 503 before attach, 200 while reading, 503 once stopping."""
        metrics = Metrics()
        server = MetricsThread(metrics, "127.0.0.1", 0)
        server.start()
        base = f"http://127.0.0.1:{server.address[1]}"
        try:
            assert _get(base + "/healthz")[0] == 200
            assert _get(base + "/readyz")[0] == 503
            assert ("shellsieve_events_total", (("direction", "in"),)) not in _scrape(base)
            metrics.attach(engine)
            assert _get(base + "/readyz")[0] == 200
            m = _scrape(base)
            assert m[("shellsieve_rules_loaded", (("format", "sigma"),))] >= 1
            assert ("shellsieve_reloads_total", (("result", "failed"),)) in m
            metrics.stopping()
            assert _get(base + "/readyz")[0] == 503
            assert _get(base + "/healthz")[0] == 200
        finally:
            server.close()

    def test_registries_are_separate(self, engine: Engine) -> None:
        """Two Metrics in one process each keep their own histogram: no global registry."""
        a, b = Metrics(), Metrics()  # the global registry would refuse the second histogram
        a.attach(engine)
        a.batch_seconds.observe(0.5)
        assert b"shellsieve_batch_seconds_count 1.0" in a.exposition()
        assert b"shellsieve_batch_seconds_count 0.0" in b.exposition()


@pytest.mark.parametrize("text", ["9464", "localhost", "host:port", ":9464", "1.2.3.4:70000", "[::1:9464"])
def test_parse_addr_refuses(text: str) -> None:
    """An address without host, port, or with a port out of range is refused, saying HOST:PORT."""
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_addr(text)


def test_parse_addr() -> None:
    """IPv4 and bracketed IPv6 addresses parse; port 0 is allowed."""
    assert parse_addr("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_addr("[::1]:0") == ("::1", 0)


class TestRun:
    def test_scraped_while_streaming_agree_with_stopped(self) -> None:
        """Scraped mid-stream the counters show the lines so far; at the end they equal `stopped`'s."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        data = EXAMPLES * 20
        half = data.count(b"\n") // 2
        first = b"".join(data.splitlines(keepends=True)[:half])
        proc = subprocess.Popen([CLI, "run", "--stats-interval", "0", "--metrics-addr", f"127.0.0.1:{port}"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stderr is not None
        try:
            _until(lambda: _reachable(base + "/readyz"))
            assert _get(base + "/healthz")[0] == 200
            proc.stdin.write(first)
            proc.stdin.flush()
            m = _until(lambda: (s := _scrape(base)) and _events(s, "out") == half and s)
            assert _events(m, "in") == half and m[("shellsieve_events_pending", ())] == 0
            assert m[("shellsieve_batch_seconds_count", ())] >= 1
            proc.stdin.write(data[len(first):])
            proc.stdin.flush()
            total = data.count(b"\n")
            m = _until(lambda: (s := _scrape(base)) and _events(s, "out") == total and s)
            proc.stdin.close()
            err = proc.stderr.read()
            assert proc.wait(timeout=30) == 0
        finally:
            _end(proc)
        stopped = next(e for e in _logs(err) if e["event"] == "stopped")
        for direction in ("in", "out", "dropped", "undelivered"):
            assert _events(m, direction) == stopped[f"events_{direction}"]
        assert m[("shellsieve_bytes_total", (("direction", "in"),))] == stopped["bytes_in"]
        assert m[("shellsieve_alerts_total", ())] == stopped["alerts"] > 0
        hits = {dict(k[1])["rule_id"]: v for k, v in m.items() if k[0] == "shellsieve_rule_hits_total"}
        assert hits == stopped["hits_per_rule"]
        malformed = {dict(k[1])["reason"]: v for k, v in m.items() if k[0] == "shellsieve_malformed_total"}
        assert malformed == stopped["malformed"]
        assert m[("shellsieve_open_sequences", ())] == stopped["open_sequences"]
        assert m[("shellsieve_compile_seconds", ())] >= 0

    def test_port_in_use_refused_before_reading(self) -> None:
        """A taken port: startup_failed naming the option and address, exit 2, no rules compiled, no output."""
        with socket.create_server(("127.0.0.1", 0)) as taken:
            addr = f"127.0.0.1:{taken.getsockname()[1]}"
            for command in (["run"], ["serve", "--listen", f"http://127.0.0.1:{free_port()}"]):
                res = subprocess.run([CLI, *command, "--metrics-addr", addr], input=EXAMPLES,
                                     capture_output=True, timeout=60)
                assert res.returncode == 2, res.stderr
                assert res.stdout == b""
                failed = [e for e in _logs(res.stderr) if e["event"] == "startup_failed"]
                assert failed and failed[0]["address"] == addr and failed[0]["option"] == "--metrics-addr"
                assert not any(e["event"] == "started" for e in _logs(res.stderr))

    @pytest.mark.parametrize("command", ["run", "serve"])
    def test_bad_address_refused_naming_the_option(self, command: str) -> None:
        """A malformed --metrics-addr is a usage error (exit 2) naming the option."""
        res = subprocess.run([CLI, command, "--metrics-addr", "localhost"], capture_output=True, timeout=30)
        assert res.returncode == 2
        assert b"--metrics-addr" in res.stderr and b"HOST:PORT" in res.stderr


class TestServe:
    def test_listener_counters_and_health(self, tmp_path: Path) -> None:
        """serve's buffer and per-listener metrics count a POSTed batch; health codes; totals agree with `stopped`."""
        mport, lport = free_port(), free_port()
        base, listen = f"http://127.0.0.1:{mport}", f"http://127.0.0.1:{lport}"
        out = (tmp_path / "out").open("wb")
        proc = subprocess.Popen([CLI, "serve", "--listen", listen, "--metrics-addr", f"127.0.0.1:{mport}",
                                 "--stats-interval", "0"], stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        try:
            _until(lambda: _reachable(base + "/readyz"))
            assert _get(base + "/readyz")[0] == 200 and _get(base + "/healthz")[0] == 200
            req = urllib.request.Request(listen + "/", data=EXAMPLES, method="POST",
                                         headers={"Content-Type": "application/x-ndjson"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200
            n = EXAMPLES.count(b"\n")
            name = listen
            m = _until(lambda: (s := _scrape(base)) and _events(s, "out") == n and s)
            labels = {k[1]: v for k, v in m.items() if k[0] == "shellsieve_listener_events_total"}
            assert labels[(("direction", "in"), ("listener", name))] == n
            assert labels[(("direction", "delivered"), ("listener", name))] == n
            assert m[("shellsieve_buffer_events", ())] == 0
            assert m[("shellsieve_buffer_capacity_events", ())] > 0
            assert m[("shellsieve_listener_requests_refused_total", (("listener", name), ("reason", "busy")))] == 0
            assert m[("shellsieve_batch_seconds_count", ())] >= 1
            proc.terminate()
            err = proc.stderr.read()
            assert proc.wait(timeout=30) == 0
        finally:
            _end(proc)
            out.close()
        stopped = next(e for e in _logs(err) if e["event"] == "stopped")
        assert stopped["events_out"] == _events(m, "out")
        assert stopped["listeners"][name]["events_in"] == n


def _reachable(url: str) -> bool:
    try:
        return _get(url)[0] == 200
    except OSError:
        return False


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stderr):
        if pipe is not None:
            pipe.close()
