"""`run`'s progress bar (issue 22, item 4): on a terminal's stderr for a file on stdin, never otherwise."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from shellsieve.run.progress import progress_for

EVENTS = Path(__file__).resolve().parent.parent / "examples" / "events.ndjson"


def _run(stderr: int) -> subprocess.CompletedProcess[bytes]:
    with EVENTS.open("rb") as stdin:
        return subprocess.run([sys.executable, "-m", "shellsieve.cli", "run", "--no-cache"], stdin=stdin,
                              stdout=subprocess.PIPE, stderr=stderr, timeout=120)


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the pty's other side closed
            return out
        if not chunk:
            return out
        out += chunk


def test_bar_on_a_terminal_for_a_file() -> None:
    master, slave = pty.openpty()
    try:
        done = _run(slave)
        os.close(slave)
        shown = _read_all(master).decode(errors="replace")
    finally:
        os.close(master)
    assert done.returncode == 0
    size = EVENTS.stat().st_size
    assert "shellsieve: 100%" in shown and "alerts=" in shown and "events_per_s=" in shown
    assert f"{size}/{size}" in shown or "k/" in shown  # bytes of total, scaled above 1 KiB


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    done = _run(subprocess.PIPE)
    assert done.returncode == 0
    assert b"shellsieve: " not in done.stderr and b"\r" not in done.stderr


def test_no_bar_for_a_pipe_or_unseekable_stdin() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    read, write = os.pipe()
    try:
        with os.fdopen(read, "rb", closefd=False) as pipe:
            assert progress_for(pipe, Tty()) is None
    finally:
        os.close(read)
        os.close(write)
    assert progress_for(io.BytesIO(b"x"), Tty()) is None
    with EVENTS.open("rb") as stdin:
        assert progress_for(stdin, io.StringIO()) is None
