"""Every input format through one matcher, output in input order.

A block of ECS JSON lines goes straight to the raw-scan fast path (`BlockMatcher.process`). Any
other line is decoded by its format into an ECS dict and matched in a batch (`match_views`).
auditd records wait for the rest of their event (EOE or a timeout), so each line owns an output
slot and slots leave strictly in order: a line never overtakes one read before it. A shipper's
envelope (events/envelope.py) is decoded as the line it carries and alerted in its own shape.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Any

import msgspec

from shellsieve.events.auditd import AuditAssembler, AuditEvent, parse_record, to_ecs
from shellsieve.events.cmdline import from_cmdline
from shellsieve.events.ecs import nest
from shellsieve.events.envelope import DEFAULT_FIELDS, PROCESS_KEY, envelope_field, key_probes, merge
from shellsieve.events.formats import ECS_MARKERS, all_ecs, json_format, text_format
from shellsieve.events.hostos import os_of_command
from shellsieve.events.pids import PidTable
from shellsieve.events.sysmon import from_evtx_json, from_syslog_xml, from_winlogbeat
from shellsieve.events.tolerant import NOT_JSON, first_reason, read
from shellsieve.events.wazuh import from_wazuh, is_command
from shellsieve.run.enrich import Hit, alert_line, disown, enrich, json_line, message_line, put
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats

__all__ = ["Router"]

_decode = msgspec.json.decode
# ValidationError: a number out of range (`1e400`, 5,000 digits) in an untyped decode.
_JSON_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError, msgspec.ValidationError)


class _Slot:
    """One input line's place in the output; `out` is None until its event is decided. `line` is None
    for a slot that holds output already counted elsewhere (an ECS run, an over-long line's bytes).
    `env`: for a shipper envelope, its decoded object and the field that carries the raw line."""

    __slots__ = ("out", "line", "lines", "env")

    def __init__(self, line: bytes | None, out: bytes | None = None, lines: int = 1) -> None:
        self.line = line
        self.out = out
        self.lines = lines  # input lines whose output this slot carries (released when it leaves)
        self.env: tuple[dict[str, Any], str] | None = None

    def text(self) -> str:
        """The raw line this slot stands for: the envelope's, else its own."""
        if self.env is not None:
            doc, field = self.env
            text: str = doc[field]  # the envelope's field was checked to hold a string
            return text.rstrip("\r\n")
        assert self.line is not None
        return self.line.rstrip(b"\r").decode("utf-8", "replace")


class _Pending:
    """A decoded non-ECS event waiting for the next `match_views` batch."""

    __slots__ = ("view", "flat", "slots", "doc", "fmt", "carrier", "malformed")

    def __init__(self, view: dict[str, Any], flat: dict[str, Any], slots: list[_Slot],
                 doc: dict[str, Any] | None, fmt: str, carrier: int = 0, malformed: str | None = None) -> None:
        self.view, self.flat, self.slots, self.doc, self.fmt, self.carrier = view, flat, slots, doc, fmt, carrier
        self.malformed = malformed  # why a JSON line was read by the tolerant reader


def _overlay(view: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The source document's own fields over the derived ECS ones (the source wins where both exist)."""
    for k, v in doc.items():
        cur = view.get(k)
        if isinstance(v, dict) and isinstance(cur, dict):
            _overlay(cur, v)
        else:
            view[k] = v
    return view


def _own_os(doc: dict[str, Any]) -> str | None:
    """The host.os.type an envelope itself names (Filebeat, Elastic Agent), if any."""
    host = doc.get("host")
    os_ = host.get("os") if type(host) is dict else None
    value = os_.get("type") if type(os_) is dict else doc.get("host.os.type")
    return value if type(value) is str else None


class Router:
    def __init__(self, matcher: BlockMatcher, stats: Stats, fmt: str = "auto", audit_timeout_s: float = 0.5,
                 audit_max_open: int = 4096, pid_table_size: int = 65_536,
                 passwd: dict[str, str] | None = None, envelope_fields: tuple[str, ...] = DEFAULT_FIELDS,
                 host_os: str = "auto") -> None:
        self.matcher = matcher
        self.stats = stats
        self.fmt = fmt
        self.only_alerts = matcher.only_alerts
        self.audit = AuditAssembler(audit_timeout_s, audit_max_open)
        self.pids = PidTable(pid_table_size)
        self.passwd = passwd or {}
        self.local_host = socket.gethostname()  # the host of auditd records without node=
        # Read at each block and line, never kept in a closure: a driver may set them per input.
        self.envelope_fields = envelope_fields  # () turns envelopes off
        self.host_os = host_os  # events/hostos.py HOST_OS
        self._env_key: tuple[str, ...] | None = None
        self._env: tuple[frozenset[int], tuple[bytes, ...], tuple[bytes, ...]] = (frozenset(), (), ())
        self._queue: deque[_Slot] = deque()
        self._batch: list[_Pending] = []
        self.released = 0  # input lines whose output has left, in input order (engine.py)
        # The last `process` went to the matcher whole (no line queued before or in it): its output
        # is then one line per line the matcher counted out, and nothing of it waits
        self.direct = False

    def use(self, matcher: BlockMatcher) -> None:
        """Route to `matcher` from now on (a reload swapped the rules; engine.py `swap`)."""
        self.matcher = matcher
        self._env_key = None  # the envelope keys' pattern ids are the new database's

    # -- the loop's interface ---------------------------------------------------------------
    def process(self, block: bytes, now: float) -> bytes:
        """`block` holds whole lines each ending in b"\\n"; returns what may leave now, in order."""
        out: bytes | None = None
        before = self.stats.lines_in
        self.direct = False
        if self.fmt == "ecs":
            out = self.matcher.process(block)
        elif self.fmt == "auto" and not self._queue and block[:1] == b"{":
            # The fast path's own scan holds the format markers and the default envelope keys; without
            # it, a separate probe. A key of another envelope field sends the block line by line.
            ids, probes, extra = self._envelopes()
            if extra and any(k in block for k in extra):
                pass
            elif self.matcher.fast:
                out = self.matcher.process_ecs(block, ids)
            elif all_ecs(block) and not any(k in block for k in probes):
                out = self.matcher.process(block)
        if out is not None:
            self.stats.formats["ecs"] += self.stats.lines_in - before
            self.released += self.stats.lines_in - before
            self.direct = not self._queue
            return out
        lines = block.split(b"\n")
        lines.pop()
        run: list[bytes] = []  # consecutive ECS lines: one fast-path call
        for line in lines:
            decoded = self._decode(line)
            if decoded is None:
                run.append(line)
                continue
            if run:
                self._ecs_run(run)
                run = []
            self._enqueue(line, *decoded, now)
        if run:
            self._ecs_run(run)
        return self.tick(now)

    def passthrough(self, piece: bytes, ends: bool = False) -> bytes:
        """Bytes of a line forwarded as they are (an over-long line's pieces), still behind every line
        before it; `ends`: these bytes end an input line, which is then released."""
        if not self._queue:
            self.released += ends
            return piece
        self._queue.append(_Slot(None, piece, int(ends)))
        return b""

    def tick(self, now: float) -> bytes:
        """Let auditd events that waited too long leave; returns the output now ready."""
        for ev in self.audit.expired(now):
            self._audit_event(ev)
        self._match()
        return self._flush()

    def finish(self) -> bytes:
        """End of input: every waiting event leaves."""
        for ev in self.audit.drain():
            self._audit_event(ev)
        self._match()
        return self._flush()

    def deadline(self) -> float | None:
        """When the oldest waiting auditd event times out (monotonic seconds), if any waits."""
        return self.audit.next_deadline()

    # -- per line ---------------------------------------------------------------------------
    def _envelopes(self) -> tuple[frozenset[int], tuple[bytes, ...], tuple[bytes, ...]]:
        """For the current `envelope_fields`: their ids in the line database, every field's key
        bytes, and the key bytes of the fields the line database does not hold."""
        fields = self.envelope_fields
        if fields != self._env_key:
            compiled = self.matcher.rs.envelope_ids
            ids = frozenset(pid for pid, f in compiled.items() if f in fields)
            extra = tuple(f for f in fields if f not in compiled.values())
            self._env = (ids, key_probes(fields), key_probes(extra))
            self._env_key = fields
        return self._env

    def _envelope(self, line: bytes, doc: dict[str, Any] | None = None) -> tuple[str, Any, None] | None:
        """("envelope", (object, field), None) if the JSON line is a shipper envelope, else None.
        `doc`: the line decoded already."""
        fields = self.envelope_fields
        if not fields or PROCESS_KEY.search(line):
            return None
        if doc is None:
            if not any(k in line for k in self._envelopes()[1]):
                return None
            try:
                doc = _decode(line)
            except _JSON_ERRORS:
                return None  # a malformed line: the fast path reads and counts it as ever
            if type(doc) is not dict or json_format(doc) != "ecs":
                return None
        field = envelope_field(doc, fields)
        return None if field is None else ("envelope", (doc, field), None)

    def _decode(self, line: bytes) -> tuple[str, Any, str | None] | None:
        """(format, decoded JSON object or text, malformed reason or None) for a line, or None for
        an ECS line (fast path). Malformed ECS JSON also goes to the fast path, which reads, counts
        and forwards it; a Sysmon or Wazuh line the strict decode refuses is read by the tolerant
        reader (the last of duplicate keys wins, as the format decoders expect single values)."""
        fmt = self.fmt
        if fmt in ("ecs", "sysmon", "wazuh") or (fmt == "auto" and line.lstrip()[:1] in (b"{", b"[")):
            if fmt == "auto" and not any(m in line for m in ECS_MARKERS):
                return self._envelope(line)
            reason = None
            try:
                doc = _decode(line)
            except _JSON_ERRORS:
                doc, found = read(line)
                reason = first_reason(found, "invalid_json")
            if not isinstance(doc, dict):
                return None
            if fmt == "auto":
                fmt = json_format(doc)
                if fmt == "ecs" and reason is None:
                    return self._envelope(line, doc)
            return None if fmt == "ecs" else (fmt, doc, reason)
        raw = line.rstrip(b"\r")
        try:
            text, reason = raw.decode(), None
        except UnicodeDecodeError:
            # U+FFFD, never a `\xNN` text the line could have spelt itself; the output is marked
            text, reason = raw.decode("utf-8", "replace"), "invalid_utf8"
        return (text_format(text) if fmt == "auto" else fmt), text, reason

    def _enqueue(self, line: bytes, fmt: str, payload: Any, malformed: str | None, now: float) -> None:
        """Give a decoded line its output slot and its event a place in the next match batch."""
        self.stats.lines_in += 1
        self.stats.bytes_in += len(line) + 1
        slot = _Slot(line)
        self._queue.append(slot)
        if fmt == "envelope":
            doc, field = payload
            self._unwrap(slot, doc, field, now)
            return
        self.stats.formats[fmt] += 1
        self._event(slot, fmt, payload, malformed, now)

    def _unwrap(self, slot: _Slot, doc: dict[str, Any], field: str, now: float) -> None:
        """A shipper envelope: the line it carries is decoded as a line of its own would be (one
        level: an envelope inside is not opened). Inner JSON that does not decode to an object is a
        bad line: counted, and the envelope forwarded as it came."""
        slot.env = (doc, field)
        self.stats.envelopes += 1
        text = slot.text()
        if text.lstrip()[:1] not in ("{", "["):
            fmt = text_format(text)
            self.stats.formats[fmt] += 1
            self._event(slot, fmt, text, None, now, _own_os(doc))
            return
        data = text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8, a bad line
        try:
            inner = _decode(data)
        except _JSON_ERRORS:
            inner, reason = None, first_reason(read(data)[1], "invalid_json")
        else:
            reason = None if isinstance(inner, dict) else "not_object"
        fmt = "ecs" if inner is None or reason is not None else json_format(inner)
        self.stats.formats[fmt] += 1
        if reason is not None:
            self._malformed(slot, reason)
        elif fmt == "ecs":
            self._batch.append(_Pending(inner, {}, [slot], inner, fmt))
        else:
            self._event(slot, fmt, inner, None, now)

    def _event(self, slot: _Slot, fmt: str, payload: Any, malformed: str | None, now: float,
               own_os: str | None = None) -> None:
        """Decode a line of a non-ECS format into its event, queued for the next match batch.
        `own_os`: the host.os.type an envelope names for the line it carries."""
        doc: dict[str, Any] | None = None
        if fmt == "auditd":
            rec = parse_record(payload)
            if rec is None:
                self._malformed(slot, "not_audit_record")
                return
            if malformed is not None:
                self.stats.malformed[malformed] += 1  # one reason per line
            for ev in self.audit.add(rec, slot, now):
                self._audit_event(ev)
            return
        if fmt == "wazuh":
            doc = payload
            flat = from_wazuh(payload, self.pids, self.passwd)
            if is_command(flat):  # a command log's or command decoder's command: an OS as a command line's
                os_type = own_os or os_of_command(self.host_os, flat["process.command_line"])
                if os_type is not None:
                    flat["host.os.type"] = os_type
        elif fmt == "sysmon":
            doc = payload
            flat = (from_evtx_json(payload) if "Event" in payload and "winlog" not in payload
                    else from_winlogbeat(payload))
        elif fmt == "sysmon-syslog":
            parsed = from_syslog_xml(payload)
            if parsed is None:
                self._malformed(slot, "invalid_xml")
                return
            flat = parsed
        else:
            flat = from_cmdline(payload)
        if malformed is not None:
            self.stats.malformed[malformed] += 1  # one reason per line
        if doc is None:
            flat["message"] = payload
            view = nest(flat)
            if fmt == "cmdline":
                os_type = own_os or os_of_command(self.host_os, payload)
                if os_type is not None:  # set here, not nested from `flat`: a third of nest's cost
                    flat["host.os.type"] = os_type
                    view["host"] = {"os": {"type": os_type}}
        else:
            view = _overlay(nest(flat), doc)
        self._batch.append(_Pending(view, flat, [slot], doc, fmt, 0, malformed if doc is not None else None))

    def _malformed(self, slot: _Slot, reason: str) -> bool:
        self.stats.malformed[reason] += 1
        if self.only_alerts:
            out = b""
        elif slot.env is not None:
            out = self._envelope_line(slot, [], {})  # valid JSON: forwarded as it came
        else:
            assert slot.line is not None  # a slot without a line is never decoded
            out = message_line(slot.line, malformed=reason)
        self._emit(slot, out)
        return False

    def _audit_event(self, ev: AuditEvent) -> None:
        self.stats.audit_events += 1
        flat = to_ecs(ev.records, self.pids, self.passwd, self.local_host)
        flat["message"] = "\n".join(s.text() for s in ev.slots)
        types = [r.type for r in ev.records]
        carrier = types.index("EXECVE") if "EXECVE" in types else types.index("SYSCALL") if "SYSCALL" in types else 0
        self._batch.append(_Pending(nest(flat), flat, ev.slots, None, "auditd", carrier))

    def _ecs_run(self, run: list[bytes]) -> None:
        self._match()  # events before the run are matched first: sequences see input order
        before = self.stats.lines_in
        out = self.matcher.process(b"\n".join(run) + b"\n")
        self.stats.formats["ecs"] += self.stats.lines_in - before
        self._queue.append(_Slot(None, out, self.stats.lines_in - before))

    # -- matching and output ----------------------------------------------------------------
    def _match(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        for item, hits in zip(batch, self.matcher.match_views([p.view for p in batch])):
            if item.doc is not None:
                self._emit(item.slots[0], self._json_out(item, hits))
                continue
            fields = nest({k: v for k, v in item.flat.items() if k != "message"}) if hits else None
            for i, slot in enumerate(item.slots):
                if i == item.carrier and hits:
                    self._emit(slot, self._text_line(slot, hits, fields))
                else:
                    self._emit(slot, b"" if self.only_alerts else self._text_line(slot))

    def _text_line(self, slot: _Slot, hits: list[Hit] | None = None, fields: dict[str, Any] | None = None
                   ) -> bytes:
        """The output of a text line: `{"message": ...}`, or its envelope."""
        if slot.env is None:
            assert slot.line is not None  # a slot without a line is never decoded
            return message_line(slot.line, hits, fields, split=self.matcher.alert_docs)
        return self._envelope_line(slot, hits or [], fields or {})

    def _envelope_line(self, slot: _Slot, hits: list[Hit], parsed: dict[str, Any]) -> bytes:
        """An envelope without hits leaves as it came; with hits, every envelope field as it came,
        the parsed event's fields where the envelope leaves room (else under `shellsieve.parsed`,
        events/envelope.py `merge`), and the alert fields."""
        assert slot.env is not None and slot.line is not None
        doc = slot.env[0]
        if not hits:
            if disown(doc):  # as for any JSON line: the input's own `shellsieve` moves aside
                self.stats.disowned += 1
                return json_line(doc)
            return slot.line + b"\n"
        out, taken = merge(doc, parsed)
        enrich(out, hits)
        if taken:
            put(out, "shellsieve.parsed", taken)
        return alert_line(out, hits, self.matcher.alert_docs)

    def _json_out(self, item: _Pending, hits: list[Hit]) -> bytes:
        line, reason = item.slots[0].line, item.malformed
        assert line is not None  # a slot without a line is never decoded
        if item.slots[0].env is not None:  # JSON carried in an envelope (always read strictly)
            if self.only_alerts and not hits:
                return b""
            return self._envelope_line(item.slots[0], hits, item.doc or {})
        if reason in NOT_JSON:  # not forwarded as it came: wrapped, with what was read if it matched
            if not hits:
                return b"" if self.only_alerts else message_line(line, malformed=reason)
            return message_line(line, hits, nest({k: v for k, v in item.flat.items() if k != "message"}), reason,
                                self.matcher.alert_docs)
        doc = item.doc
        assert doc is not None
        if not hits:
            if self.only_alerts:
                return b""
            if disown(doc):  # the input's own `shellsieve` moves aside: that key is ours alone
                self.stats.disowned += 1
                return json_line(doc)
            return line + b"\n"
        enrich(doc, hits)
        if reason is not None:
            put(doc, "shellsieve.malformed", reason)
        return alert_line(doc, hits, self.matcher.alert_docs)

    def _emit(self, slot: _Slot, out: bytes) -> None:
        slot.out = out
        if slot.line is None:
            return
        # An empty input line is a line too: `{"message":""}` leaves for it and is counted.
        if out:
            self.stats.lines_out += 1
        else:
            self.stats.dropped += 1  # --only-alerts

    def _flush(self) -> bytes:
        q = self._queue
        out: list[bytes] = []
        released = 0
        while q:
            done = q[0].out
            if done is None:  # the oldest line waits for its event: nothing after it may leave yet
                break
            out.append(done)
            released += q.popleft().lines
        self.released += released
        return b"".join(out)
