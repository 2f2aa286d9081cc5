"""`shellsieve consume` against a real nats-server: partitions by host, order, sequence rules across
messages, crash and restart without loss or duplicates, a full output stream, a server restart,
poison messages, and the checks at start."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import REVERSE_SHELL_SEQUENCE, rule_ids
from test_seeds import NC, exec_of, net, proc

from .conftest import (
    Layout,
    Server,
    Stored,
    Worker,
    free_port,
    publish,
    read_stream,
    run,
    stored_count,
    wait_until,
    with_js,
)

HOSTS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
POISON = b"\xff\xfe\x00 not utf-8 \xc3\x28"


def _host_events(host: str) -> list[dict[str, Any]]:
    """A reverse shell on `host`: nc starts, three unrelated events, nc connects 0.5 s later."""
    entity = f"e-{host}"
    start = exec_of(NC, host__id=host, process__entity_id=entity)
    fillers = [proc(host__id=host, process__entity_id=f"{entity}-{k}", process__pid=5000 + k,
                    **{"@timestamp": f"2024-05-01T10:00:00.{100 * (k + 1):03d}Z"}) for k in range(3)]
    return [start, *fillers, net(host__id=host, process__entity_id=entity)]


def _labelled(doc: dict[str, Any], n: int) -> bytes:
    return json.dumps({**doc, "labels": {"n": n}}).encode()


def _n(stored: Stored) -> int:
    return int(stored.doc["labels"]["n"])


def _adds_up(stopped: dict[str, Any]) -> None:
    assert stopped["events_in"] == stopped["events_out"] + stopped["events_dropped"] + stopped["events_pending"]
    assert stopped["events_pending"] == 0 and stopped["messages_in"] == stopped["messages_acked"]


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class TestPartitionsAndOrder:
    def test_hosts_split_across_two_workers_in_order(self, server: Server, tmp_path: Path) -> None:
        """Six hosts interleaved over two partitions: each host's events reach one worker, in order, the
        sequence rule fires on each host's connection, and a poison message is forwarded once as malformed."""
        layout = Layout("PARTS", partitions=2)
        run(with_js(server.url, layout.create))
        workers = [Worker(layout.worker_args(server.url, i), tmp_path / f"w{i}.log") for i in range(2)]
        for w in workers:
            w.wait_event("consuming")
        per_host = {h: _host_events(h) for h in HOSTS}
        items, n = [], 0
        for step in range(5):  # round robin: the workers see the hosts interleaved
            for h in HOSTS:
                items.append((layout.input_subject(h), _labelled(per_host[h][step], n)))
                n += 1
        items.append((layout.input_subject("alpha"), POISON))
        seqs = run(with_js(server.url, lambda js: publish(js, items)))
        wait_until(lambda: stored_count(server.url, "PARTS_OUT") >= len(items) + len(HOSTS), what="the output")
        stopped = [w.stopped() for w in workers]

        inputs = run(with_js(server.url, lambda js: read_stream(js, "PARTS")))
        partition_of = {seq: int(m.subject.split(".")[3]) for seq, m in zip(seqs, inputs)}
        assert [m.subject.split(".")[:3] for m in inputs] == [["parts", "events", "p"]] * len(items)
        stored = run(with_js(server.url, lambda js: read_stream(js, "PARTS_OUT")))
        events = [m for m in stored if m.subject.startswith("parts.out.")]
        alerts = [m for m in stored if m.subject == "parts.alerts"]
        assert sorted(m.input_seq for m in events) == seqs  # every input once, none twice
        used = set()
        for m in events:  # the worker of the input's partition published it
            assert m.subject == f"parts.out.{partition_of[m.input_seq]}"
            used.add(m.subject)
        assert used == {"parts.out.0", "parts.out.1"}
        for h in HOSTS:
            mine = [m for m in events if m.data != b"" and m.doc.get("host", {}).get("id") == h]
            assert len({m.subject for m in mine}) == 1  # one worker
            assert [_n(m) for m in mine] == sorted(_n(m) for m in mine)  # in order
            assert REVERSE_SHELL_SEQUENCE in rule_ids(mine[-1].doc)
        assert sum(REVERSE_SHELL_SEQUENCE in rule_ids(m.doc) for m in alerts) == len(HOSTS)
        assert all(m.msg_id.endswith(":alert") for m in alerts)
        (poison,) = [m for m in events if "message" in m.doc]
        assert poison.input_seq == seqs[-1]
        assert sum(s["malformed"]["invalid_utf8"] for s in stopped) == 1
        for s in stopped:
            _adds_up(s)
            assert s["redelivered"] == 0
        assert sum(s["messages_in"] for s in stopped) == len(items)

        async def pending(js: Any) -> list[tuple[int, int]]:
            infos = [await js.consumer_info("PARTS", f"shellsieve-{i}") for i in range(2)]
            return [(i.num_ack_pending, i.num_redelivered) for i in infos]

        assert run(with_js(server.url, pending)) == [(0, 0), (0, 0)]  # all acked, the poison once


class TestCrash:
    def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(self, server: Server, tmp_path: Path) -> None:
        """A worker killed with SIGKILL while working through 2000 events, then restarted: the output
        stream holds every input exactly once, in input order (message ids and the events' own numbers)."""
        layout = Layout("CRASH", partitions=1)
        run(with_js(server.url, layout.create))
        total = 2000
        items = [(layout.input_subject(f"h{n % 7}"), _labelled(proc(host__id=f"h{n % 7}"), n)) for n in range(total)]
        seqs = run(with_js(server.url, lambda js: publish(js, items)))
        args = [*layout.worker_args(server.url), "--batch", "20"]
        first = Worker(args, tmp_path / "first.log")
        wait_until(lambda: stored_count(server.url, "CRASH_OUT") >= 200, what="some output", timeout=60)
        first.stop(signal.SIGKILL)
        at_kill = -1  # what the server stores of the dead worker's last writes settles in a moment
        while at_kill != (now := stored_count(server.url, "CRASH_OUT")):
            at_kill = now
            time.sleep(0.2)
        assert at_kill < total  # it died mid-stream
        second = Worker(args, tmp_path / "second.log")
        wait_until(lambda: stored_count(server.url, "CRASH_OUT") >= total, what="all the output", timeout=90)
        stopped = second.stopped()
        _adds_up(stopped)
        stored = run(with_js(server.url, lambda js: read_stream(js, "CRASH_OUT")))
        assert len(stored) == total
        assert [m.input_seq for m in stored] == seqs
        assert [_n(m) for m in stored] == list(range(total))
        # the second worker took up at the first one's ack floor: what it published again (the first had
        # published it, not acked it) was dropped as a duplicate, and counted
        assert stopped["messages_in"] - stopped["duplicates"] == total - at_kill
        assert stopped["redelivered"] >= stopped["duplicates"]


class TestCannotPublish:
    def test_full_output_stream_holds_the_acks_until_space_frees(self, server: Server, tmp_path: Path) -> None:
        """The output stream refuses new messages at 30: the worker acks nothing past them and retries;
        once the limit is lifted every event arrives, once and in order."""
        layout = Layout("FULL", partitions=1, out_max_msgs=30)
        run(with_js(server.url, layout.create))
        total = 100
        items = [(layout.input_subject("h"), _labelled(proc(), n)) for n in range(total)]
        seqs = run(with_js(server.url, lambda js: publish(js, items)))
        worker = Worker([*layout.worker_args(server.url), "--batch", "50", "--alerts-subject", ""],
                        tmp_path / "w.log")
        worker.wait_event("publish_failed")

        async def ack_floor(js: Any) -> int:
            return int((await js.consumer_info("FULL", "shellsieve")).ack_floor.stream_seq)

        assert stored_count(server.url, "FULL_OUT") == 30
        assert run(with_js(server.url, ack_floor)) <= 30  # nothing acked whose output was refused

        async def lift(js: Any) -> None:
            config = (await js.stream_info("FULL_OUT")).config
            config.max_msgs = -1
            await js.update_stream(config)

        run(with_js(server.url, lift))
        wait_until(lambda: stored_count(server.url, "FULL_OUT") >= total, what="the rest of the output")
        wait_until(lambda: run(with_js(server.url, ack_floor)) == seqs[-1], what="the acks")
        stopped = worker.stopped()
        _adds_up(stopped)
        assert stopped["publish_failures"] >= 1
        stored = run(with_js(server.url, lambda js: read_stream(js, "FULL_OUT")))
        assert [_n(m) for m in stored] == list(range(total))

    def test_server_absent_at_start_and_restarted_mid_run(self, nats_binary: str, tmp_path: Path) -> None:
        """Started before the server exists it retries (/readyz 503 meanwhile); --create makes the deploy/
        streams and the consumer; a server restart mid-run loses and duplicates nothing."""
        srv = Server(nats_binary, tmp_path / "store")
        metrics = free_port()
        worker = Worker(["--nats-url", srv.url, "--partitions", "1", "--partition", "0", "--create",
                         "--stats-interval", "0", "--metrics-addr", f"127.0.0.1:{metrics}"], tmp_path / "w.log")
        try:
            worker.wait_event("nats_unreachable")
            assert _readyz(metrics) == 503  # up, not ready: no server
            srv.start()
            worker.wait_event("consuming")
            assert _readyz(metrics) == 200
            first = [(f"events.h{n % 3}", _labelled(proc(host__id=f"h{n % 3}"), n)) for n in range(50)]
            run(with_js(srv.url, lambda js: publish(js, first)))
            wait_until(lambda: stored_count(srv.url, "SHELLSIEVE") >= 50, what="the first output")
            srv.stop()
            srv.start()
            second = [(f"events.h{n % 3}", _labelled(proc(host__id=f"h{n % 3}"), n)) for n in range(50, 100)]
            run(with_js(srv.url, lambda js: publish(js, second)))
            wait_until(lambda: stored_count(srv.url, "SHELLSIEVE") >= 100, what="the second output", timeout=60)
            _adds_up(worker.stopped())
            stored = run(with_js(srv.url, lambda js: read_stream(js, "SHELLSIEVE")))
            assert [_n(m) for m in stored if m.subject == "shellsieve.events"] == list(range(100))
        finally:
            worker.stop(signal.SIGKILL)
            srv.stop()


class TestStartChecks:
    def test_missing_stream_is_named(self, server: Server, tmp_path: Path) -> None:
        """No stream and no --create: exit 2 naming the stream and --stream."""
        worker = Worker(["--nats-url", server.url, "--stream", "NOSUCH", "--subject", "nosuch.>",
                         "--output-subject", "nosuch.out", "--alerts-subject", ""], tmp_path / "w.log")
        assert worker.stop(signal.SIGCONT) == 2
        failed = worker.wait_event("startup_failed")
        assert failed["option"] == "--stream" and "NOSUCH" in failed["reason"]

    def test_partition_count_checked_at_start(self, server: Server, tmp_path: Path) -> None:
        """--partitions 3 against a 2-way stream is refused at start, naming --partitions."""
        layout = Layout("REMAP", partitions=2)
        run(with_js(server.url, layout.create))
        args = layout.worker_args(server.url, 0)
        wrong = Worker([*args[:args.index("--partitions") + 1], "3", *args[args.index("--partitions") + 2:]],
                       tmp_path / "wrong.log")
        assert wrong.stop(signal.SIGCONT) == 2
        assert wrong.wait_event("startup_failed")["option"] == "--partitions"

    @pytest.mark.slow
    def test_partition_count_changed_under_a_running_worker(self, server: Server, tmp_path: Path) -> None:
        """A worker whose stream is remapped to another partition count stops within the check interval, exit 2."""
        layout = Layout("REMAP2", partitions=2)
        run(with_js(server.url, layout.create))
        worker = Worker(layout.worker_args(server.url, 0), tmp_path / "w.log")
        worker.wait_event("consuming")

        async def remap(js: Any) -> None:
            config = (await js.stream_info("REMAP2")).config
            config.subject_transform.dest = "remap2.events.p.{{partition(4,1)}}.{{wildcard(1)}}"
            await js.update_stream(config)

        run(with_js(server.url, remap))
        assert worker.stop(signal.SIGCONT, timeout=30) == 2
        changed = worker.wait_event("partitions_changed")
        assert changed["stream_partitions"] == 4 and changed["partitions"] == 2
