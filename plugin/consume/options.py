"""The options of `shellsieve consume`, checked at start: a bad one is refused naming it (exit 2).

Partitioning: the stream maps `events.<host>` to `events.p.<i>.<host>` with JetStream's partition
function (deploy/nats/), and worker i of N reads `events.p.<i>.>`. `{partition}` in --subject,
--consumer, --output-subject and --alerts-subject is replaced by the worker's partition index;
`--partition auto` takes it from the host name's trailing ordinal (a StatefulSet pod `shellsieve-2`).
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import msgspec

__all__ = ["ConsumeOptions", "OptionError", "partition_from_hostname", "partitions_of_transform", "resolve"]

# JetStream names (streams, consumers) may hold no whitespace, `.`, `*`, `>`, path separators
_NAME = re.compile(r"[^\s.*>/\\]{1,255}")
_TOKEN = re.compile(r"[^\s.*>]+")
_ORDINAL = re.compile(r"-(\d+)$")
# what a stream's subject transform says of the partition count: {{partition(N,...)}}
_PARTITION_FN = re.compile(r"\{\{\s*partition\(\s*(\d+)\s*[,)]", re.IGNORECASE)


class OptionError(ValueError):
    """A bad option: its message names it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class ConsumeOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = "nats://127.0.0.1:4222"
    stream: str = "EVENTS"
    consumer: str = "shellsieve-{partition}"
    subject: str = "events.p.{partition}.>"
    partition: int | None = None  # None: one worker takes the whole stream
    partitions: int | None = None
    output_subject: str = "shellsieve.events"
    alerts_subject: str = "shellsieve.alerts"  # "": alerts go to the output subject only
    batch: int = 256
    ack_wait_s: float = 30.0
    create: bool = False


def partition_from_hostname(hostname: str | None = None) -> int:
    """The ordinal a StatefulSet gives its pod (`shellsieve-2` -> 2)."""
    name = hostname if hostname is not None else socket.gethostname()
    m = _ORDINAL.search(name.split(".")[0])
    if m is None:
        raise OptionError("--partition", f"auto: the host name {name!r} ends in no -<ordinal> "
                                         "(a StatefulSet pod name); give the partition index")
    return int(m.group(1))


def partitions_of_transform(destination: str) -> int | None:
    """N of the `{{partition(N,...)}}` in a subject transform's destination, or None."""
    m = _PARTITION_FN.search(destination)
    return int(m.group(1)) if m else None


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("nats", "tls") or not parts.hostname or port == -1:
        raise OptionError("--nats-url", f"{url!r} is not nats://HOST[:PORT] or tls://HOST[:PORT]")
    return url


def _check_subject(option: str, subject: str, wildcards: bool) -> str:
    tokens = subject.split(".")
    for i, tok in enumerate(tokens):
        if tok == "*" and wildcards:
            continue
        if tok == ">" and wildcards and i == len(tokens) - 1:
            continue
        if not _TOKEN.fullmatch(tok):
            raise OptionError(option, f"{subject!r} is not a NATS subject"
                                      f"{' filter' if wildcards else ' (no wildcards)'}")
    return subject


def resolve(url: str, stream: str, consumer: str | None, subject: str | None, partition: str | None,
            partitions: int | None, output_subject: str, alerts_subject: str, batch: int, ack_wait_s: float,
            create: bool, hostname: str | None = None) -> ConsumeOptions:
    """The options as given on the command line, checked, with {partition} filled in."""
    _check_url(url)
    if not _NAME.fullmatch(stream):
        raise OptionError("--stream", f"{stream!r} is not a stream name (no spaces, '.', '*', '>', '/')")
    if (partition is None) != (partitions is None):
        raise OptionError("--partition", "--partition and --partitions go together")
    index: int | None = None
    if partitions is not None:
        if not 1 <= partitions <= 1024:
            raise OptionError("--partitions", f"{partitions} is not within 1..1024")
        assert partition is not None
        if partition == "auto":
            index = partition_from_hostname(hostname)
        elif partition.isdigit():
            index = int(partition)
        else:
            raise OptionError("--partition", f"{partition!r} is not an index or auto")
        if index >= partitions:
            raise OptionError("--partition", f"{index} is not within 0..{partitions - 1} (--partitions {partitions})")
    if not 1 <= batch <= 10_000:
        raise OptionError("--batch", f"{batch} is not within 1..10000")
    if not 0.5 <= ack_wait_s <= 3600:
        raise OptionError("--ack-wait", f"{ack_wait_s} is not within 0.5..3600 seconds")

    def fill(option: str, value: str) -> str:
        if "{partition}" in value and index is None:
            raise OptionError(option, f"{value!r} names {{partition}}: give --partition and --partitions")
        return value.replace("{partition}", str(index))

    defaults = ConsumeOptions()
    if subject is None:
        subject = defaults.subject if index is not None else "events.>"
    if consumer is None:
        consumer = defaults.consumer if index is not None else "shellsieve"
    consumer = fill("--consumer", consumer)
    if not _NAME.fullmatch(consumer):
        raise OptionError("--consumer", f"{consumer!r} is not a consumer name (no spaces, '.', '*', '>', '/')")
    alerts = _check_subject("--alerts-subject", fill("--alerts-subject", alerts_subject), False) \
        if alerts_subject else ""
    return ConsumeOptions(url=url, stream=stream, consumer=consumer,
                          subject=_check_subject("--subject", fill("--subject", subject), True),
                          partition=index, partitions=partitions,
                          output_subject=_check_subject("--output-subject", fill("--output-subject", output_subject),
                                                        False),
                          alerts_subject=alerts, batch=batch, ack_wait_s=ack_wait_s, create=create)
