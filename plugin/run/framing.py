"""Chunks from a pipe -> complete lines, with a carried tail and a cap on line length.

A line longer than the cap is not buffered: its bytes are passed through as they arrive (so a
runaway line cannot exhaust memory) and it is counted once; run/longline.py scans it in windows.
The cap is the same however the line arrives: one read, many reads, or a tail joined to a read.
"""

from __future__ import annotations

__all__ = ["Framer"]


class Framer:
    """Feed chunks, get (block of complete lines, pass-through bytes) back."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._tail = b""
        self._passing = False  # inside an over-long line: forward until its newline
        self.too_long = 0

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        """Pieces in input order: (bytes, scan). `scan` pieces are whole lines each ending in b"\\n"."""
        out: list[tuple[bytes, bool]] = []
        if self._passing:
            nl = chunk.find(b"\n")
            if nl < 0:
                return [(chunk, False)]
            out.append((chunk[: nl + 1], False))
            chunk = chunk[nl + 1 :]
            self._passing = False
        # The block is cut from the chunk before the tail is joined: one copy of its bytes, not two
        # (tail + chunk, then the slice), and none when the chunk ends on a newline.
        last = chunk.rfind(b"\n")
        if last < 0:
            self._tail += chunk
        else:
            if self._tail:
                block = self._tail + memoryview(chunk)[: last + 1]
            else:
                block = chunk if last + 1 == len(chunk) else chunk[: last + 1]
            self._tail = chunk[last + 1 :]
            if len(block) > self.max_line:  # only then can a line in it be over the cap
                out += self._cut_long(bytes(block))
            else:
                out.append((block, True))
        if len(self._tail) > self.max_line:
            self.too_long += 1
            out.append((self._tail, False))
            self._tail = b""
            self._passing = True
        return out

    def _cut_long(self, block: bytes) -> list[tuple[bytes, bool]]:
        """`block` in runs of lines to scan and over-long lines (each whole, with its newline) to pass."""
        out: list[tuple[bytes, bool]] = []
        find, cap = block.find, self.max_line
        start = run = 0
        while start < len(block):
            nl = find(b"\n", start)
            if nl - start > cap:
                if start > run:
                    out.append((block[run:start], True))
                out.append((block[start : nl + 1], False))
                self.too_long += 1
                run = nl + 1
            start = nl + 1
        if run < len(block):
            out.append((block[run:] if run else block, True))
        return out

    def finish(self) -> bytes:
        """What is left at end of input: a last line without its newline (given one), or nothing."""
        tail, self._tail = self._tail, b""
        if self._passing:
            self._passing = False
            return b"\n" if tail == b"" else tail + b"\n"
        return tail + b"\n" if tail else b""

    @property
    def passing(self) -> bool:
        return self._passing
