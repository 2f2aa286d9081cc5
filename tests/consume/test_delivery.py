"""The delivery count and stream sequence read from a JetStream reply subject (pull.delivery),
checked against nats-py's own metadata parse of the same subjects."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg
from shellsieve.consume.pull import delivery

SUBJECTS = [
    "$JS.ACK.EVENTS.shellsieve-0.1.2051.2048.1764864000000000000.7",  # 9 tokens
    "$JS.ACK.EVENTS.shellsieve.3.17.12.1764864000000000000.0",
    "$JS.ACK.hub.ACCHASH.EVENTS.shellsieve-1.2.99.98.1764864000000000000.5.token",  # domain form
    "$JS.ACK._.ACCHASH.EVENTS.shellsieve-1.1.4.4.1764864000000000000.0",
]


@pytest.mark.parametrize("reply", SUBJECTS)
def test_delivery_matches_nats_py_metadata(reply: str) -> None:
    meta = Msg(None, reply=reply).metadata  # type: ignore[arg-type]
    assert delivery(reply) == (meta.num_delivered, meta.sequence.stream)


@pytest.mark.parametrize("reply", ["", "_INBOX.abc.1", "$JS.ACK.EVENTS.c.1.2"])
def test_delivery_refuses_a_subject_that_is_no_ack_subject(reply: str) -> None:
    with pytest.raises(ValueError, match="not a JetStream ack subject"):
        delivery(reply)
