"""Oversize and unterminated input keep memory bounded: the filter never holds a line over the cap.

A line over `--max-line-bytes` is forwarded piece by piece as it arrives and scanned in windows
(run/longline.py), so 64 MiB of one line costs the child no more memory than a short one does. The
child's peak RSS comes from wait4() for that child alone.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from reliability.conftest import CLI

MiB = 1 << 20


def _peak_rss_mib(data_chunks: int, tail: bytes, cache_dir: Path, out: Path) -> tuple[int, float]:
    """Stream `data_chunks` MiB of one line, then `tail`, through `shellsieve run`; (exit code, peak RSS MiB)."""
    with out.open("wb") as sink:
        proc = subprocess.Popen([CLI, "run", "--stats-interval", "0", "--cache-dir", str(cache_dir)],
                                stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.DEVNULL)
        assert proc.stdin is not None

        def feed() -> None:
            assert proc.stdin is not None
            chunk = b"a" * MiB
            for _ in range(data_chunks):
                proc.stdin.write(chunk)
            proc.stdin.write(tail)
            proc.stdin.close()

        writer = threading.Thread(target=feed)
        writer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        writer.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


@pytest.mark.parametrize("tail", [b"\n{\"after\":1}\n", b""], ids=["terminated", "unterminated"])
def test_a_64_mib_line_does_not_grow_memory(tail: bytes, cli_cache: Path, tmp_path: Path) -> None:
    """64 MiB of one line (then a short line, or end of input without a newline) leaves whole,
    byte for byte, with the child's peak RSS far below the line's size."""
    code, small = _peak_rss_mib(1, b"\n", cli_cache, tmp_path / "small")
    code, big = _peak_rss_mib(64, tail, cli_cache, tmp_path / "big")
    assert code == 0
    out = (tmp_path / "big").read_bytes()
    assert out == b"a" * (64 * MiB) + (tail or b"\n")
    assert big < small + 32, (small, big)  # what a short line costs, give or take the heap's churn
