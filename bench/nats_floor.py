"""What nats-py costs a worker per event with no engine at all: the floor under `consume`'s CPU.

    python bench/nats_floor.py --events 20000

The corpus (bench/data.py) goes into a partitioned EVENTS stream as in bench/run_nats.py; then, in this
process, the worker's own Puller and Pusher move it: pull up to 512, publish each payload with a
message id, wait for every acknowledgement, one AckAll ack per batch. CPU is this process's
(time.process_time) over the loop only; the engine's share is measured apart by `run` on a pipe.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js import api

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_nats import _output_stream, filled_server  # noqa: E402
from shellsieve.consume.publishes import Publish  # noqa: E402
from shellsieve.consume.pull import Puller, delivery  # noqa: E402
from shellsieve.consume.push import Pusher  # noqa: E402


async def move(url: str, n: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to pull, publish and ack `n` events with no engine."""
    nc = await nats.connect(url)
    await nc.jetstream().add_consumer("EVENTS", api.ConsumerConfig(
        durable_name="floor", ack_policy=api.AckPolicy.ALL, filter_subject="events.>"))
    puller, pusher = Puller(nc, "EVENTS", "floor"), Pusher(nc)
    await puller.start()
    await pusher.start()
    done, cpu, wall = 0, time.process_time(), time.monotonic()
    while done < n:
        msgs = await puller.fetch(512, 1.0)
        pubs = [Publish("one.events", m.data, f"EVENTS:{delivery(m.reply)[1]}:0", False, False) for m in msgs]
        outcome = await pusher.publish(pubs, 5.0)
        if outcome.stored != len(pubs):
            raise SystemExit(f"publish failed: {outcome.error}")
        if msgs:
            await msgs[-1].ack()
        done += len(msgs)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await nc.close()
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    n = ap.parse_args().events
    with tempfile.TemporaryDirectory() as tmp, filled_server(Path(tmp), n) as (url, _, _):
        asyncio.run(_output_stream(url, "one"))
        cpu, wall = asyncio.run(move(url, n))
    print(f"{n} events, pull + publish + ack, no engine: {cpu:.2f} s CPU, {cpu / n * 1e6:.1f} us/event, "
          f"wall {wall:.2f} s")


if __name__ == "__main__":
    main()
