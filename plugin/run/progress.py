"""`run`'s progress bar: bytes read of the input file's size, events/s and alerts, on stderr.

Shown only when stdin is a regular file (its size is the total) and stderr is a terminal, so a
pipeline's logs never get bar redraws. Updated once per batch, never per event."""

from __future__ import annotations

import os
import stat
from typing import IO, Any

from shellsieve.run.stats import Stats

__all__ = ["Progress", "progress_for"]


class Progress:
    """A tqdm bar over the input's bytes; `update` takes the counters after each batch."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        from tqdm import tqdm  # only when a bar is shown: start-up stays lean otherwise

        # a terminal reporting 0 columns (a bare pty) would get an empty bar: then a fixed width
        sized = _columns(stream) > 0
        self._bar: Any = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=stream,
                              desc="shellsieve", dynamic_ncols=sized, ncols=None if sized else 100,
                              nrows=None if sized else 24, mininterval=0.2)
        self._seen = 0

    def update(self, stats: Stats) -> None:
        self._bar.update(stats.bytes_in - self._seen)
        self._seen = stats.bytes_in
        elapsed = max(self._bar.format_dict["elapsed"], 1e-9)
        self._bar.set_postfix(events_per_s=f"{stats.lines_in / elapsed:.0f}", alerts=stats.alerts, refresh=False)

    def close(self) -> None:
        self._bar.close()


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def progress_for(stdin: IO[bytes], stderr: IO[str]) -> Progress | None:
    """A bar when stdin is a regular file and stderr a terminal; None otherwise."""
    try:
        if not stderr.isatty():
            return None
        info = os.fstat(stdin.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    # a file read from the middle (`< file` after a seek) has less left than its size
    return Progress(max(0, info.st_size - os.lseek(stdin.fileno(), 0, os.SEEK_CUR)), stderr)
