"""Telling alert documents (--alert-docs split) from event lines in output bytes.

Every count of output lines (events_out, serve's delivery receipts and refusals) counts input
events: an alert document is an extra line that stands for no input line, so it is counted apart
(`alert_docs_out`). An alert document always follows its event in the same output and its encoding
starts with DOC_START, which no event line can: an input's own top-level `shellsieve` is always
moved to shellsieve.input, and a line that is not JSON leaves as {"message": ...}."""

from __future__ import annotations

__all__ = ["DOC_START", "doc_lines", "event_lines", "is_doc"]

DOC_START = b'{"shellsieve":{"document":"alert",'
_MARK = b"\n" + DOC_START


def doc_lines(data: bytes, end: int | None = None) -> int:
    """Whole alert-document lines in data[:end] (whole: their newline is before `end`)."""
    last = data.rfind(b"\n", 0, len(data) if end is None else end)
    if last < 0:
        return 0
    # a mark that starts before the last newline lies wholly before it (it holds no newline) and
    # its line ends at or before it; a batch cut between an event and its documents (serve) may
    # start with one
    return data.count(_MARK, 0, last) + data.startswith(DOC_START)


def event_lines(data: bytes, end: int | None = None) -> int:
    """Whole lines in data[:end] that are events, not alert documents."""
    return data.count(b"\n", 0, len(data) if end is None else end) - doc_lines(data, end)


def is_doc(line: bytes) -> bool:
    """Whether one output line is an alert document."""
    return line.startswith(DOC_START)
