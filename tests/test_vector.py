"""vector.toml is the main HTTP topology of deploy/; the exec variant's command runs as Vector runs it:
no replay of the log already there, appended lines filtered, the filter's logs on stderr, and a
SIGTERM to the child Vector started ends every process of the pipeline."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import msgspec

from conftest import ROOT, rule_ids

CONFIG = ROOT / "vector.toml"
EXEC_CONFIG = ROOT / "deploy" / "vector" / "vector-exec.toml"


class TestVectorConfig:
    def test_main_topology(self) -> None:
        """vector.toml sends the file source to serve over HTTP with acknowledgements and reads serve's output back."""
        cfg = tomllib.loads(CONFIG.read_text())
        assert cfg["sources"]["endpoint_logs"]["type"] == "file"
        sink = cfg["sinks"]["shellsieve"]
        assert sink["type"] == "http" and sink["acknowledgements"]["enabled"] is True
        assert cfg["sources"]["shellsieve_out"]["type"] == "http_server"

    def test_exec_source_settings(self) -> None:
        """The exec variant streams, respawns, keeps stderr and reads lines as bytes for the route."""
        src = tomllib.loads(EXEC_CONFIG.read_text())["sources"]["shellsieve"]
        assert src["type"] == "exec" and src["mode"] == "streaming"
        assert src["include_stderr"] is True
        assert src["decoding"]["codec"] == "bytes" and src["framing"]["method"] == "newline_delimited"
        assert src["streaming"]["respawn_on_exit"] is True
        assert src["command"][:2] == ["bash", "-c"] and "shellsieve run" in src["command"][2]

    def test_exec_command_runs_like_vector(self, tmp_path: Path) -> None:
        """Started as Vector starts it (stdin /dev/null, stdout and stderr piped), the command skips the
        log already written, filters appended lines into one JSON event each, logs `started` on stderr,
        and on SIGTERM to its pid alone exits 0 with `stopped`, closing both pipes."""
        command = tomllib.loads(EXEC_CONFIG.read_text())["sources"]["shellsieve"]["command"]
        log = tmp_path / "events.ndjson"
        log.write_bytes(msgspec.json.encode({"process": {"command_line": "old line"}}) + b"\n")
        env = dict(os.environ, SHELLSIEVE_INPUT=str(log),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        events = [
            {"process": {"command_line": "ls -la"}},
            {"process": {"command_line": "php -r '$sock=fsockopen(\"8.8.8.8\",1337);'"}},
        ]
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, start_new_session=True) as proc:
            try:
                assert proc.stderr is not None
                err = _read_until(proc.stderr.fileno(), b'"started"', timeout=60)
                with log.open("ab") as f:  # appended after the start: followed
                    f.write(b"".join(msgspec.json.encode(e) + b"\n" for e in events) + b"garbage line\n")
                lines = _read_lines(proc, 3, timeout=15)
                proc.send_signal(signal.SIGTERM)  # Vector signals its direct child only
                assert proc.wait(timeout=15) == 0
                rest_out = proc.stdout.read() if proc.stdout else b""
                err += proc.stderr.read()  # EOF: tail ended too (it held the stderr pipe)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        docs = [msgspec.json.decode(x) for x in lines]
        assert rule_ids(docs[0]) == [] and rule_ids(docs[1]) == ["100103"]
        assert docs[2] == {"message": "garbage line"}
        assert rest_out == b""  # "old line" was never replayed
        assert b'"stopped"' in err


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"{needle!r} did not arrive: {buf[-500:]!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"stream closed before {needle!r}: {buf[-500:]!r}"
        buf += chunk
    return buf


def _read_lines(proc: subprocess.Popen[bytes], n: int, timeout: float) -> list[bytes]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], f"only {len(out)} of {n} lines arrived"
        buf += os.read(fd, 65536)
        *done, buf = buf.split(b"\n")
        out.extend(done)
    assert buf == b""
    return out
