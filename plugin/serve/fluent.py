"""The Fluent forward protocol (v1) as a pure codec: bytes in, messages out, and back. No I/O.

Input (a forward listener):

    dec = ForwardDecoder(max_message_bytes=64 << 20)
    for msg in dec.feed(data):            # ForwardMessage(tag, entries, chunk, size, signal)
        for time, record in msg.entries:  # time: float seconds; record: JSON-able dict, str keys
            line = record_line(record)    # one NDJSON line for the engine
        if msg.chunk is not None:
            reply(ack(msg.chunk))         # the client waits for it (Fluent Bit: Require_ack_response)

    `feed` raises ForwardError on garbage (not an array, wrong arity, a tag that is not a string,
    invalid msgpack, an unknown compression) or on a message larger than `max_message_bytes`: the
    connection is then beyond repair (the stream has no resync point) and should be closed.

Modes read: Message `[tag, time, record, option?]`, Forward `[tag, [[time, record], ...], option?]`,
PackedForward `[tag, bin|str of concatenated [time, record], option?]` and CompressedPackedForward
(option `compressed: "gzip"`, one or more gzip members, capped at `max_decompressed_bytes`).
`compressed: "text"` (Fluentd's way of saying none) is accepted. time is an int, a float or an
EventTime (ext 0: uint32 seconds, uint32 nanoseconds, big-endian). Fluent Bit's out_forward sends
`[[time, metadata], record]` entries (`Retain_Metadata_In_Forward_Mode`, on by default since v5.0.5):
the metadata is dropped. A chunk whose option `fluent_signal` is not 0 (logs) holds metrics or traces: it is
returned with no entries and its `signal`, so it can still be acked and counted as dropped.
In records, bin becomes UTF-8 text (invalid bytes as U+FFFD), an ext other than EventTime the
base64 of its data, an EventTime float seconds, and a key that is not a str its str(). A str that
is not valid UTF-8 makes the message invalid (msgspec checks it); PackedForward entries sent as str,
as Fluentd does, are read as the bin they are.

Framing walks every msgpack header of a message in Python (linear, resumable across `feed`s; then
one msgspec decode of the exact slice): a few tens of thousands of small records a second.

Not supported: the shared_key / user handshake (HELO, PING, PONG; the server would have to send HELO
first, so a client configured with Shared_Key waits for it and times out; a PING that arrives anyway
raises ForwardError), TLS (the transport's business), UDP heartbeats (the server's), zstd.

Output (forwarding to Fluent Bit's or Fluentd's in_forward):

    payload = encode_forward(tag, lines, chunk=new_chunk_id(), now=time.time())
    acks = AckReader(); acks.feed(reply) -> [chunk ids]

`encode_forward` makes one Forward-mode message `[tag, [[EventTime, record], ...], {"chunk", "size"}]`
from NDJSON lines, as Fluent Bit's own out_forward does when not compressing.
"""

from __future__ import annotations

import base64
import calendar
import os
import re
import struct
import zlib
from typing import Any, Final

import msgspec

__all__ = ["ForwardError", "ForwardMessage", "ForwardDecoder", "AckReader", "record_line", "ack",
           "encode_forward", "new_chunk_id", "event_time", "DEFAULT_MAX_MESSAGE_BYTES"]

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 << 20
# Containers nested deeper than this are refused before msgspec (and record conversion) recurse.
MAX_DEPTH: Final = 256
_EVENT_TIME: Final = struct.Struct(">II")


class ForwardError(ValueError):
    """A stream that is not the forward protocol, or a message over a limit; close the connection."""


class ForwardMessage(msgspec.Struct, frozen=True):
    tag: str
    entries: list[tuple[float, dict[str, Any]]]
    chunk: str | None = None  # the option `chunk`: reply ack(chunk) once the entries are taken
    size: int = 0  # bytes on the wire
    signal: int = 0  # option `fluent_signal`: 0 logs; others (metrics, traces) carry no entries

    @property
    def count(self) -> int:
        return len(self.entries)


# --- msgpack object boundaries ---------------------------------------------------------------
def _kinds() -> list[tuple[int, int, int]]:
    """(kind, a, b) for each type byte. kind 0: a value of a bytes in all; 1: a container of a items, b=1 a map;
    2: a length in a bytes, then b more (ext type), then the payload; 3: a count in a bytes of b-item
    containers; 4: invalid."""
    table = [(4, 0, 0)] * 256
    for b in range(256):
        if b <= 0x7F or b >= 0xE0:
            table[b] = (0, 1, 0)
        elif b <= 0x8F:
            table[b] = (1, 2 * (b & 0x0F), 1)
        elif b <= 0x9F:
            table[b] = (1, b & 0x0F, 0)
        elif b <= 0xBF:
            table[b] = (0, 1 + (b & 0x1F), 0)
    for b, size in {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1,
                    0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}.items():
        table[b] = (0, 1 + size, 0)
    for b, (width, ext) in {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
                            0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}.items():
        table[b] = (2, width, ext)
    for b, (width, per) in {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}.items():
        table[b] = (3, width, per)
    return table


_KINDS: Final = _kinds()


class _Walker:
    """Finds where a top-level msgpack object ends, resuming where the last call stopped.

    Linear: each header byte is read once across calls; payloads are skipped by their length."""

    __slots__ = ("pos", "stack", "binary")

    def __init__(self) -> None:
        self.pos = 0  # offset in the caller's buffer of the next header to read
        self.stack = [1]  # objects still to read at each nesting level
        # Saw bin or ext other than an EventTime: values JSON cannot hold as decoded; the caller resets it.
        self.binary = False

    def end(self, buf: bytes | bytearray | memoryview, start: int, limit: int) -> int | None:
        """The end offset of the object at `start`, or None if `buf` does not hold all of it yet."""
        pos, stack, n, kinds = max(self.pos, start), self.stack, len(buf), _KINDS
        while stack:
            if pos >= n:
                break
            top, b = stack[-1], buf[pos]
            kind, x, y = kinds[b]
            if top < 0 and not top & 1 and not (0xA0 <= b <= 0xBF or 0xD9 <= b <= 0xDB):
                self.binary = True  # a map key that is not a str
            count = 0
            if kind == 0:
                nxt = pos + x
                if 0xD4 <= b <= 0xD8 and not (b == 0xD7 and pos + 1 < n and buf[pos + 1] == 0):
                    self.binary = True  # an ext that is not an EventTime
            elif kind == 1:
                nxt, count = pos + 1, -x if y else x
            elif kind == 4:  # 0xC1 is never used
                raise ForwardError(f"invalid msgpack: type byte 0xc1 at offset {pos - start}")
            elif pos + 1 + x > n:
                break
            elif kind == 2:
                nxt = pos + 1 + x + y + int.from_bytes(buf[pos + 1:pos + 1 + x], "big")
                self.binary = self.binary or b <= 0xC9  # bin or ext, not str
            else:
                count = int.from_bytes(buf[pos + 1:pos + 1 + x], "big")
                nxt, count = pos + 1 + x, -2 * count if y == 2 else count
            if nxt - start > limit:  # known from a header before the bytes arrive
                raise ForwardError(f"message larger than {limit} bytes")
            if nxt > n:
                break
            stack[-1] = top + 1 if top < 0 else top - 1  # maps count up from -2 * pairs, arrays down
            pos = nxt
            if count:
                stack.append(count)
                if len(stack) > MAX_DEPTH:
                    raise ForwardError(f"msgpack nested deeper than {MAX_DEPTH} levels")
            else:
                while stack and not stack[-1]:
                    stack.pop()
        self.pos = pos
        if stack:
            if n - start > limit:
                raise ForwardError(f"message larger than {limit} bytes")
            return None
        self.stack = [1]
        return pos

    def consumed(self, count: int) -> None:
        """The caller dropped `count` bytes from the front of its buffer."""
        self.pos -= count


def _count(payload: bytes, limit: int) -> tuple[int, bool]:
    """How many objects are concatenated in `payload` (PackedForward entries), and whether they hold
    bin, ext or non-str keys; raise if one is cut."""
    walker, start, count = _Walker(), 0, 0
    while start < len(payload):
        end = walker.end(payload, start, limit)
        if end is None:
            raise ForwardError("PackedForward entries end inside an entry")
        start, count = end, count + 1
    return count, walker.binary


def _array_header(count: int) -> bytes:
    return b"\xdd" + count.to_bytes(4, "big")


def _packed_str_as_bin(raw: bytes) -> bytes:
    """`raw` with a str second item (Fluentd packs entries in a str32) retyped as bin.

    msgspec decodes str as UTF-8 text, which packed binary entries are not."""
    head = {0xDC: 3, 0xDD: 5}.get(raw[0], 1 if 0x90 <= raw[0] <= 0x9F else 0)
    if not head or len(raw) <= head:
        return raw
    second = _Walker().end(raw, head, len(raw))  # where the tag ends
    if second is None or second >= len(raw):
        return raw
    b = raw[second]
    if 0xA0 <= b <= 0xBF:
        width, length = 1, b & 0x1F
    elif b in (0xD9, 0xDA, 0xDB):
        width = {0xD9: 2, 0xDA: 3, 0xDB: 5}[b]
        length = int.from_bytes(raw[second + 1:second + width], "big")
    else:
        return raw
    return raw[:second] + b"\xc6" + length.to_bytes(4, "big") + raw[second + width:]


# --- decoding -------------------------------------------------------------------------------
def _ext_hook(code: int, data: memoryview) -> Any:
    if code == 0 and len(data) == 8:
        sec, nsec = _EVENT_TIME.unpack(data)
        return sec + nsec / 1e9
    return msgspec.msgpack.Ext(code, bytes(data))


_DECODER: Final = msgspec.msgpack.Decoder(ext_hook=_ext_hook)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _plain(value: Any) -> Any:
    """A decoded msgpack value as JSON can hold it: bin as UTF-8 text, ext as base64, keys as str."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else _text(k) if isinstance(k, bytes) else str(k)): _plain(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, msgspec.msgpack.Ext):
        return base64.b64encode(value.data).decode()
    return value


def _time(value: Any) -> float:
    if isinstance(value, list) and len(value) == 2:  # Fluent Bit's [time, metadata]
        value = value[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ForwardError(f"event time must be an integer, a float or an EventTime, not {type(value).__name__}")


def _entry(item: Any, binary: bool) -> tuple[float, dict[str, Any]]:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
        raise ForwardError("an entry must be [time, record] with record a map")
    return _time(item[0]), _plain(item[1]) if binary else item[1]


def _decode(data: bytes) -> Any:
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ForwardError(f"invalid msgpack: {exc}") from None


def _gunzip(data: bytes, limit: int) -> bytes:
    """Every gzip member of `data`, concatenated (Fluent Bit may send several), at most `limit` bytes."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(data, limit - len(out) + 1)
        except zlib.error as exc:
            raise ForwardError(f"invalid gzip data: {exc}") from None
        if len(out) > limit:
            raise ForwardError(f"decompressed entries larger than {limit} bytes")
        if not inflater.eof:
            raise ForwardError("gzip data ends inside a member")
        data = inflater.unused_data
    return bytes(out)


class ForwardDecoder:
    """Forward-protocol bytes from one connection -> ForwardMessages, buffering partial messages."""

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_decompressed_bytes: int | None = None) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_decompressed_bytes = max_decompressed_bytes or max_message_bytes
        self._buf = bytearray()
        self._walker = _Walker()

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[ForwardMessage]:
        """Append `data`; return the messages it completes, in order."""
        self._buf += data
        out, start = [], 0
        try:
            while start < len(self._buf):
                end = self._walker.end(self._buf, start, self.max_message_bytes)
                if end is None:
                    break
                binary, self._walker.binary = self._walker.binary, False
                out.append(self._message(bytes(self._buf[start:end]), binary))
                start = end
        finally:  # one cut of the buffer per feed, not one per message
            del self._buf[:start]
            self._walker.consumed(start)
        return out

    def _message(self, raw: bytes, binary: bool) -> ForwardMessage:
        root = _decode(_packed_str_as_bin(raw))
        if not isinstance(root, list):
            raise ForwardError(f"a forward message is an array, not {type(root).__name__}")
        if root and root[0] in ("PING", b"PING") and len(root) == 6:
            raise ForwardError("the shared_key handshake (HELO/PING/PONG) is not supported")
        if len(root) < 2 or not isinstance(root[0], str):
            raise ForwardError("a forward message starts with a tag string and has 2 to 4 items")
        tag, second = root[0], root[1]
        body_len = 3 if isinstance(second, (int, float)) and not isinstance(second, bool) else 2
        if len(root) > body_len + 1 or len(root) < body_len:
            raise ForwardError(f"a forward message of this mode has {body_len} or {body_len + 1} items, "
                               f"not {len(root)}")
        option = root[body_len] if len(root) > body_len else None
        if option is None:
            option = {}
        if not isinstance(option, dict):
            raise ForwardError("the forward option must be a map")
        chunk = option.get("chunk")
        if chunk is not None and not isinstance(chunk, str):
            raise ForwardError("the option chunk must be a string")
        signal = option.get("fluent_signal", 0)
        if not isinstance(signal, int):
            raise ForwardError("the option fluent_signal must be an integer")
        if signal != 0:
            return ForwardMessage(tag, [], chunk, len(raw), signal)
        if body_len == 3:  # Message mode
            if not isinstance(root[2], dict):
                raise ForwardError("a Message-mode record must be a map")
            entries = [_entry(root[1:3], binary)]
        elif isinstance(second, list):  # Forward mode
            entries = [_entry(item, binary) for item in second]
        elif isinstance(second, bytes):  # (Compressed)PackedForward, str or bin on the wire
            entries = self._packed(second, option.get("compressed"))
        else:
            raise ForwardError(f"the second item of a forward message cannot be {type(second).__name__}")
        return ForwardMessage(tag, entries, chunk, len(raw))

    def _packed(self, payload: bytes, compressed: Any) -> list[tuple[float, dict[str, Any]]]:
        # Fluent Bit's in_forward also trusts the gzip magic over a missing option.
        if compressed == "gzip" or (compressed is None and payload[:2] == b"\x1f\x8b"):
            payload = _gunzip(payload, self.max_decompressed_bytes)
        elif compressed not in (None, "text"):
            raise ForwardError(f"unsupported compression {compressed!r} (gzip only)")
        count, binary = _count(payload, self.max_decompressed_bytes)
        # One decode of the entries as an array instead of one per entry.
        items = _decode(_array_header(count) + payload)
        return [_entry(item, binary) for item in items]


# --- acks ----------------------------------------------------------------------------------
def ack(chunk: str) -> bytes:
    """The response to a message whose option holds `chunk`: msgpack {"ack": chunk}."""
    return msgspec.msgpack.encode({"ack": chunk})


class AckReader:
    """A forward output's side: the server's {"ack": id} responses from a stream -> chunk ids."""

    def __init__(self, max_response_bytes: int = 4096) -> None:
        self._max = max_response_bytes  # Fluent Bit reads acks into 512 bytes
        self._buf = bytearray()
        self._walker = _Walker()

    def feed(self, data: bytes) -> list[str]:
        """Append `data`; return the chunk ids acknowledged by the responses it completes."""
        self._buf += data
        out = []
        while self._buf:
            end = self._walker.end(self._buf, 0, self._max)
            if end is None:
                break
            response = _decode(bytes(self._buf[:end]))
            del self._buf[:end]
            self._walker.consumed(end)
            if not (isinstance(response, dict) and isinstance(response.get("ack"), str)):
                raise ForwardError("an ack response is a map with an `ack` string")
            out.append(response["ack"])
        return out


def new_chunk_id() -> str:
    """A fresh chunk id: 16 random bytes in base64, as Fluentd's out_forward makes them."""
    return base64.b64encode(os.urandom(16)).decode()


# --- encoding ------------------------------------------------------------------------------
def _json_hook(value: Any) -> Any:
    if isinstance(value, msgspec.msgpack.Ext):
        return base64.b64encode(value.data).decode()
    return str(value)


_JSON_ENCODER: Final = msgspec.json.Encoder(enc_hook=_json_hook)
_MSGPACK_ENCODER: Final = msgspec.msgpack.Encoder()


def record_line(record: dict[str, Any]) -> bytes:
    """One NDJSON line (ending in a newline) holding `record`, as ForwardDecoder gives it.

    Its records hold no bytes already; in other records bytes are base64 (msgspec's JSON form),
    and values JSON has no form for (an ext type) are base64 or str()."""
    buf = bytearray()
    _JSON_ENCODER.encode_into(record, buf)
    buf += b"\n"
    return bytes(buf)


_RFC3339: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d\d):?(\d\d))?")


def event_time(record: dict[str, Any], now: float) -> tuple[int, int]:
    """(seconds, nanoseconds) of a record: its `@timestamp`, `timestamp`, `date` or `time`, else `now`."""
    for key in ("@timestamp", "timestamp", "date", "time"):
        value = record.get(key)
        if isinstance(value, str):
            match = _RFC3339.fullmatch(value.strip())
            if match:
                y, mo, d, h, mi, s, frac, _z, sign, oh, om = match.groups()
                try:
                    sec = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
                except (ValueError, OverflowError):
                    continue
                if sign:
                    sec -= (1 if sign == "+" else -1) * (int(oh) * 3600 + int(om) * 60)
                if 0 <= sec < 1 << 32:
                    return sec, int((frac or "0").ljust(9, "0"))
        elif key != "@timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value / 1000 if value > 1e11 else value  # beyond year 5138: milliseconds
            if 0 <= seconds < 1 << 32:
                sec = int(seconds)
                return sec, min(int(round((seconds - sec) * 1e9)), 999_999_999)
    sec = int(now)
    return sec, min(int(round((now - sec) * 1e9)), 999_999_999)


def _entry_bytes(line: bytes, now: float) -> bytes:
    text = line[:-1] if line.endswith(b"\n") else line
    try:
        record = msgspec.json.decode(text)
    except msgspec.DecodeError:
        record = None
    if not isinstance(record, dict):
        record = {"message": _text(text)}
    sec, nsec = event_time(record, now)
    time = msgspec.msgpack.Ext(0, _EVENT_TIME.pack(sec, nsec))
    try:
        return _MSGPACK_ENCODER.encode((time, record))
    except OverflowError:  # an integer past 64 bits: keep the line as text
        return _MSGPACK_ENCODER.encode((time, {"message": _text(text)}))


def encode_forward(tag: str, lines: list[bytes], chunk: str, now: float) -> bytes:
    """One Forward-mode message of NDJSON `lines` with option {"chunk": chunk, "size": len(lines)}."""
    entries = [msgspec.Raw(_entry_bytes(line, now)) for line in lines]
    return _MSGPACK_ENCODER.encode((tag, entries, {"chunk": chunk, "size": len(entries)}))
