"""vector.toml is a working exec-source config: run its command as Vector would and decode the output."""

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


class TestVectorConfig:
    def test_exec_source_settings(self) -> None:
        """The exec source streams, respawns, keeps stderr out of the events and decodes JSON lines."""
        cfg = tomllib.loads(CONFIG.read_text())
        src = cfg["sources"]["shellsieve"]
        assert src["type"] == "exec" and src["mode"] == "streaming"
        assert src["include_stderr"] is False
        assert src["decoding"]["codec"] == "json"
        assert src["streaming"]["respawn_on_exit"] is True
        assert src["command"][:2] == ["sh", "-c"] and "shellsieve run" in src["command"][2]
        for sink in cfg["sinks"].values():
            for name in sink["inputs"]:
                assert name in cfg["sources"] or name in cfg.get("transforms", {})

    def test_command_runs_on_a_log_file_like_vector(self, tmp_path: Path) -> None:
        """The configured command, stdin from /dev/null as Vector starts it, follows a log and emits
        lines that each decode as one JSON event, as Vector's json codec reads them."""
        cfg = tomllib.loads(CONFIG.read_text())
        command = cfg["sources"]["shellsieve"]["command"]
        log = tmp_path / "events.ndjson"
        events = [
            {"process": {"command_line": "ls -la"}},
            {"process": {"command_line": "php -r '$sock=fsockopen(\"8.8.8.8\",1337);'"}},
        ]
        log.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events) + b"garbage line\n")
        env = dict(os.environ, SHELLSIEVE_INPUT=str(log),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env, start_new_session=True) as proc:
            try:
                lines = _read_lines(proc, 3, timeout=30)
                with log.open("ab") as f:  # tail -F follows appends
                    f.write(msgspec.json.encode({"process": {"command_line": "id"}}) + b"\n")
                lines += _read_lines(proc, 1, timeout=10)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
        docs = [msgspec.json.decode(x) for x in lines]  # each line is exactly one JSON object
        assert all(isinstance(d, dict) for d in docs)
        assert rule_ids(docs[0]) == [] and rule_ids(docs[1]) == ["100103"]
        assert docs[2] == {"message": "garbage line"}
        assert docs[3] == {"process": {"command_line": "id"}}


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
