"""What the worker checks (or, with --create, makes) on JetStream before it fetches anything.

The input stream and the durable consumer must exist (or are created with --create); the consumer
must filter the worker's subject; a stream whose subject transform partitions (`{{partition(N,1)}}`)
must say the same N as --partitions; some stream must take --output-subject (and --alerts-subject)."""

from __future__ import annotations

from typing import Any

import nats.js.errors
from nats.js import api
from nats.js.client import JetStreamContext
from shellsieve.consume.options import ConsumeOptions, partitions_of_transform

__all__ = ["INPUT_SUBJECTS", "OUTPUT_STREAM", "SetupError", "partition_transform", "partitions_now", "prepare"]

INPUT_SUBJECTS = "events.*"  # events.<host>, as the shippers publish them (deploy/nats/)
OUTPUT_STREAM = "SHELLSIEVE"  # the stream --create makes for the output and alerts subjects
DUPLICATE_WINDOW_S = 120.0  # JetStream's default: a redelivery's republish within it is dropped


class SetupError(Exception):
    """The stream or consumer is not as the options say: the message names what and which option."""

    def __init__(self, option: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.option, self.fields = option, fields


def partition_transform(partitions: int) -> api.SubjectTransform:
    """events.<host> -> events.p.<partition of host>.<host>: one host always lands in one partition."""
    return api.SubjectTransform(src=INPUT_SUBJECTS,
                                dest=f"events.p.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}")


async def partitions_now(js: JetStreamContext, stream: str) -> int | None:
    """The partition count the stream's subject transform uses (None: it has none, or the stream
    cannot be read now)."""
    try:
        info = await js.stream_info(stream)
    except (nats.errors.Error, nats.js.errors.Error):
        return None
    transform = info.config.subject_transform
    return partitions_of_transform(transform.dest or "") if transform is not None else None


async def prepare(js: JetStreamContext, opts: ConsumeOptions, log: Any) -> bool:
    """Check (or make) the streams and the consumer; whether the consumer acks all up to a message
    (AckAll: one ack per batch) rather than each message."""
    await _input_stream(js, opts, log)
    await _output_streams(js, opts, log)
    return await _consumer(js, opts, log)


async def _input_stream(js: JetStreamContext, opts: ConsumeOptions, log: Any) -> None:
    try:
        info = await js.stream_info(opts.stream)
    except nats.js.errors.NotFoundError:
        if not opts.create:
            raise SetupError("--stream", f"stream {opts.stream!r} not found (create it as deploy/nats/ shows, "
                                         "or pass --create)", stream=opts.stream) from None
        transform = partition_transform(opts.partitions) if opts.partitions is not None else None
        subjects = [INPUT_SUBJECTS] if transform is not None else [opts.subject]
        info = await js.add_stream(api.StreamConfig(name=opts.stream, subjects=subjects, subject_transform=transform,
                                                    duplicate_window=DUPLICATE_WINDOW_S))
        log.info("stream_created", stream=opts.stream, subjects=subjects,
                 subject_transform=transform.dest if transform is not None else None)
    if opts.partitions is None:
        return
    transform = info.config.subject_transform
    found = partitions_of_transform(transform.dest or "") if transform is not None else None
    if found is None:
        # a mapping in the server's configuration instead (deploy/nats/nats-server.conf) is not visible here
        log.warning("partitions_unverified", stream=opts.stream, partitions=opts.partitions,
                    detail="the stream has no partitioning subject transform; the count cannot be checked")
    elif found != opts.partitions:
        raise SetupError("--partitions", f"stream {opts.stream!r} maps to {found} partitions, not {opts.partitions}",
                         stream=opts.stream, stream_partitions=found, partitions=opts.partitions)


async def _output_streams(js: JetStreamContext, opts: ConsumeOptions, log: Any) -> None:
    missing = []
    for option, subject in (("--output-subject", opts.output_subject), ("--alerts-subject", opts.alerts_subject)):
        if not subject:
            continue
        try:
            await js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            missing.append((option, subject))
    if not missing:
        return
    if not opts.create:
        option, subject = missing[0]
        raise SetupError(option, f"no stream takes subject {subject!r}: its publishes would never be acknowledged "
                                 "(create one as deploy/nats/ shows, or pass --create)", subject=subject)
    subjects = [s for _, s in missing]
    try:
        await js.add_stream(api.StreamConfig(name=OUTPUT_STREAM, subjects=subjects,
                                             duplicate_window=DUPLICATE_WINDOW_S))
    except nats.js.errors.BadRequestError:  # it exists with other subjects: add ours
        info = await js.stream_info(OUTPUT_STREAM)
        config = info.config
        config.subjects = sorted({*(config.subjects or []), *subjects})
        await js.update_stream(config)
    log.info("stream_created", stream=OUTPUT_STREAM, subjects=subjects)


async def _consumer(js: JetStreamContext, opts: ConsumeOptions, log: Any) -> bool:
    try:
        info = await js.consumer_info(opts.stream, opts.consumer)
    except nats.js.errors.NotFoundError:
        if not opts.create:
            raise SetupError("--consumer", f"consumer {opts.consumer!r} not found on stream {opts.stream!r} "
                                           "(create it as deploy/nats/ shows, or pass --create)",
                             stream=opts.stream, consumer=opts.consumer) from None
        config = api.ConsumerConfig(durable_name=opts.consumer, filter_subject=opts.subject,
                                    ack_policy=api.AckPolicy.ALL, deliver_policy=api.DeliverPolicy.ALL,
                                    ack_wait=opts.ack_wait_s, max_ack_pending=max(1000, 4 * opts.batch))
        info = await js.add_consumer(opts.stream, config)
        log.info("consumer_created", stream=opts.stream, consumer=opts.consumer, subject=opts.subject,
                 ack_wait_s=opts.ack_wait_s)
    filters = {info.config.filter_subject} if info.config.filter_subject else set(info.config.filter_subjects or [])
    if filters != {opts.subject}:
        raise SetupError("--subject", f"consumer {opts.consumer!r} filters {sorted(filters)}, not {opts.subject!r}",
                         consumer=opts.consumer, consumer_filter=sorted(filters), subject=opts.subject)
    policy = api.AckPolicy(info.config.ack_policy) if info.config.ack_policy else api.AckPolicy.NONE
    if policy is api.AckPolicy.NONE:
        raise SetupError("--consumer", f"consumer {opts.consumer!r} takes no acks: an input would count as done "
                                       "before its output was published", consumer=opts.consumer)
    if info.config.durable_name is None:
        raise SetupError("--consumer", f"consumer {opts.consumer!r} is not durable", consumer=opts.consumer)
    return policy is api.AckPolicy.ALL
