"""The engine's output as JetStream publishes: one event per message, each with a message id.

The id is `<stream>:<input sequence>:<part>`: the input message whose feed released the line and
its place among the lines released then (an alert copy adds `:alert`). A redelivered input
released again after a crash gives the same ids, so JetStream's duplicate window drops the second
publish: at-least-once in, each output once within the window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec
from shellsieve.run.doclines import is_doc

__all__ = ["Labeller", "Publish", "is_alert"]


class _Ours(msgspec.Struct):
    alerts: list[msgspec.Raw] | None = None


class _Top(msgspec.Struct):
    shellsieve: _Ours | None = None


_top = msgspec.json.Decoder(_Top)


def is_alert(line: bytes) -> bool:
    """An event a rule alerted on (it carries shellsieve.alerts), or an alert document."""
    if b'"shellsieve"' not in line:  # one search: most events carry no shellsieve key at all
        return False
    if is_doc(line):
        return True
    try:
        ours = _top.decode(line).shellsieve
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return ours is not None and bool(ours.alerts)


class Publish(NamedTuple):
    subject: str
    payload: bytes  # the line without its newline
    msg_id: str
    doc: bool  # an alert document: an extra line, no input event's (docs/alerts.md)
    copy: bool  # the alert's copy to the alerts subject: counted apart from the events


class Labeller:
    """Cuts output bytes into publishes and numbers them by the input message that released them."""

    def __init__(self, stream: str, output_subject: str, alerts_subject: str) -> None:
        self.stream, self.output_subject, self.alerts_subject = stream, output_subject, alerts_subject
        self._seq = 0  # the input message fed last (0: none yet)
        self._part = 0  # lines labelled with it so far

    def fed(self, seq: int) -> None:
        """The input message `seq` is being fed: what comes out next is labelled with it."""
        self._seq, self._part = seq, 0

    def label(self, out: bytes) -> list[Publish]:
        """The publishes for `out` (whole lines), in order; an alert also goes to the alerts subject."""
        pubs: list[Publish] = []
        if not out:
            return pubs
        for line in _lines(out):
            self._add(pubs, line, is_doc(line))
        return pubs

    def label_block(self, out: bytes, seqs: Sequence[int], counts: Sequence[int]) -> list[Publish] | None:
        """The publishes for the output of one feed of several input messages (sequences `seqs`,
        `counts` lines each), when it is one line per input line: line i is then labelled as if its
        own message had been fed alone, the same ids a redelivery fed message by message gets.
        None when it is not (an alert document among the lines, or another line count)."""
        lines = _lines(out) if out else []
        if len(lines) != sum(counts):
            return None
        pubs: list[Publish] = []
        at = 0
        for seq, count in zip(seqs, counts, strict=True):
            self.fed(seq)
            for line in lines[at:at + count]:
                if is_doc(line):
                    return None
                self._add(pubs, line, False)
            at += count
        return pubs

    def _add(self, pubs: list[Publish], line: bytes, doc: bool) -> None:
        msg_id = f"{self.stream}:{self._seq}:{self._part}"
        self._part += 1
        pubs.append(Publish(self.output_subject, line, msg_id, doc, False))
        if self.alerts_subject and is_alert(line):
            pubs.append(Publish(self.alerts_subject, line, msg_id + ":alert", doc, True))


def _lines(out: bytes) -> list[bytes]:
    return out[:-1].split(b"\n") if out.endswith(b"\n") else out.split(b"\n")
