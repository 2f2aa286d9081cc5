"""Writes to stdout that are whole, and a count of the lines the pipe really took.

A signal never tears a write here: the handlers only set a flag, so a write blocked on a slow
reader is resumed (PEP 475) and finished before the loop looks at the flag. A reader that went
away (EPIPE) ends the output; what could not be written is counted, not claimed as written.
"""

from __future__ import annotations

import os
import select
from typing import BinaryIO

from shellsieve.run.doclines import doc_lines
from shellsieve.run.stats import Stats

__all__ = ["Output"]


class Output:
    def __init__(self, stdout: BinaryIO, stats: Stats, alert_docs: bool = False) -> None:
        self._stdout = stdout
        self._stats = stats
        self._alert_docs = alert_docs  # --alert-docs split: output lines may be alert documents
        try:
            self._fd: int | None = stdout.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None  # an in-memory stream (tests, embedding): its write is whole already
        self.error: str | None = None  # why the output ended early (errno name), if it did

    @property
    def closed(self) -> bool:
        return self.error is not None

    def write(self, data: bytes, lines: int | None = None) -> None:
        """Write all of `data` (whole lines) or, once the reader is gone, nothing more. `lines`: the
        newlines `data` holds, when the caller knows them (engine.py `Stream.lines_out`); written
        whole, they are not counted again (a count of every output byte was ~6% of a shipped run)."""
        if not data or self.error is not None:
            return
        if self._alert_docs:
            lines = None  # an alert document is told from an event only by reading the lines
        if self._fd is None:
            try:
                self._stdout.write(data)
                self._stdout.flush()
            except (OSError, ValueError) as exc:
                self.error = type(exc).__name__
                return
            self._count(data, lines=lines)
            return
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                try:
                    done += os.write(self._fd, view[done:])
                except BlockingIOError:  # a non-blocking pipe shared with another process: wait, don't spin
                    select.select([], [self._fd], [])
        except OSError as exc:  # EPIPE: the reader closed; EIO, ENOSPC: the same for us
            self.error = os.strerror(exc.errno) if exc.errno else type(exc).__name__
            self._count(data, done)
            return
        self._count(data, lines=lines)

    def _count(self, data: bytes, end: int | None = None, lines: int | None = None) -> None:
        """Whole lines written: events, and apart from them alert documents (--alert-docs split)."""
        if lines is not None and end is None:
            self._stats.lines_delivered += lines
            return
        docs = doc_lines(data, end) if self._alert_docs else 0  # without split, no pass to look for them
        self._stats.lines_delivered += data.count(b"\n", 0, len(data) if end is None else end) - docs
        self._stats.alert_docs_out += docs
