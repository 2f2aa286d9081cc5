"""Over-long lines: forwarded byte for byte as they arrive, scanned in overlapping windows.

A line over `--max-line-bytes` is never buffered whole (a runaway line must not exhaust memory), so
it can be neither decoded nor re-encoded. Each piece is scanned as it passes, joined to the last
OVERLAP bytes of the one before, with the line database in SINGLEMATCH mode (at most one callback
per pattern per window). An anchor up to OVERLAP bytes long is found wherever the pieces are cut;
a join of two literals further apart than a window is not.

What a hit can say: the anchors are necessary conditions and the rest of a rule cannot be
confirmed without the whole event, so the rules whose anchors occur are reported as candidates.
When the line is a JSON object, the report goes inside it, before its closing brace, under our own
key: `"shellsieve": {"line_too_long": {"bytes": N, "candidates": [{"id", "name", "ruleset"}]}}`;
a SIEM can alert on it. The line is otherwise forwarded exactly as it came (its own fields, even
an `event`, are untouched: writing `event.kind` would clash with them). A line that is not a JSON
object is forwarded as it came, the candidates counted.
"""

from __future__ import annotations

import msgspec

from shellsieve.compile.ruleset import Ruleset

__all__ = ["LongLines", "OVERLAP"]

OVERLAP = 4096  # bytes of the previous piece scanned again with the next: wider than any anchor literal
_HOLD = 64  # bytes held back from each piece: the closing brace and blanks, where a report goes in
_encode = msgspec.json.Encoder().encode


def _on_hit(pid: int, start: int, end: int, flags: int, pids: set[int]) -> None:
    pids.add(pid)


class LongLines:
    """One over-long line at a time: feed its pieces in order, get back the bytes to forward."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rs = ruleset
        self._skip = frozenset(ruleset.format_ids) | ruleset.envelope_ids.keys() | {ruleset.marker_id}
        self._prev = b""
        self._held = b""
        self._pids: set[int] = set()
        self._size = 0
        self._object: bool | None = None  # the line opens with `{`: None until its first byte
        self.with_candidates = 0  # over-long lines where an anchor occurred
        self.reported = 0  # of those, the JSON objects that carry the report

    @property
    def idle(self) -> bool:
        """Between lines: no piece of a line has been fed since the last one ended."""
        return self._size == 0

    def feed(self, piece: bytes) -> bytes:
        """Bytes of the line as they arrive (its last piece ends with b"\\n") -> bytes to write now."""
        self._size += len(piece)
        if self._object is None and piece.strip():
            self._object = piece.lstrip()[:1] == b"{"
        db = self.rs.single_database
        if db is not None:
            db.scan(self._prev + piece, match_event_handler=_on_hit, context=self._pids)
        self._prev = piece[-OVERLAP:] if len(piece) >= OVERLAP else (self._prev + piece)[-OVERLAP:]
        data = self._held + piece if self._held else piece
        if not piece.endswith(b"\n"):
            self._held = data[-_HOLD:]
            return data[:-_HOLD]
        out = self._end(data)
        self._prev, self._held, self._pids, self._size, self._object = b"", b"", set(), 0, None
        return out

    def _end(self, data: bytes) -> bytes:
        rules = sorted({ri for pid in self._pids - self._skip for ri in self.rs.raw_rules.get(pid, ())})
        if not rules:
            return data
        self.with_candidates += 1
        body = data.rstrip(b" \t\r\n")
        if not self._object or not body.endswith(b"}") or body[:-1].rstrip(b" \t\r\n").endswith(b"{"):
            return data
        self.reported += 1
        candidates = [{"id": r.id, "name": r.name, "ruleset": r.ruleset}
                      for r in (self.rs.rules[ri].rule for ri in rules)]
        report = _encode({"line_too_long": {"bytes": self._size - 1, "candidates": candidates}})
        return body[:-1] + b',"shellsieve":' + report + b"}" + data[len(body):]
