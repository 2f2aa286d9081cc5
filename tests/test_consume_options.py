"""`shellsieve consume` without a server: the options checked at start, the partition from a pod's
name, the message ids and alert copies of the output, Fluent Bit's batched payloads, and the exit 2
when nats-py is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import structlog
from nats.aio.msg import Msg
from shellsieve.consume.options import OptionError, partition_from_hostname, partitions_of_transform, resolve
from shellsieve.consume.payload import lines_of
from shellsieve.compile.ruleset import Ruleset
from shellsieve.consume.worker import _Worker
from shellsieve.consume.publishes import Labeller, Publish, is_alert
from shellsieve.run.doclines import DOC_START
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings
from test_seeds import BRANCHES, exec_of


def _resolve(**over: object) -> object:
    args: dict[str, object] = {"url": "nats://127.0.0.1:4222", "stream": "EVENTS", "consumer": None, "subject": None,
                                   "partition": "1", "partitions": 4, "output_subject": "shellsieve.events",
                                   "alerts_subject": "shellsieve.alerts", "batch": 256, "ack_wait_s": 30.0,
                                   "create": False}
    args.update(over)
    return resolve(**args)  # type: ignore[arg-type]


class TestOptions:
    def test_partition_fills_the_defaults(self) -> None:
        """Worker 1 of 4 reads events.p.1.> with the durable consumer shellsieve-1."""
        opts = _resolve()
        assert (opts.subject, opts.consumer, opts.partition, opts.partitions) == (  # type: ignore[attr-defined]
            "events.p.1.>", "shellsieve-1", 1, 4)

    def test_unpartitioned_defaults(self) -> None:
        """Without --partition(s) one worker reads events.> as `shellsieve`."""
        opts = _resolve(partition=None, partitions=None)
        assert (opts.subject, opts.consumer) == ("events.>", "shellsieve")  # type: ignore[attr-defined]

    @pytest.mark.parametrize(("over", "option"), [
        ({"url": "http://x:1"}, "--nats-url"),
        ({"url": "nats://:4222"}, "--nats-url"),
        ({"stream": "a.b"}, "--stream"),
        ({"consumer": "c d"}, "--consumer"),
        ({"partition": "4"}, "--partition"),
        ({"partition": "x"}, "--partition"),
        ({"partition": None}, "--partition"),
        ({"partitions": 0}, "--partitions"),
        ({"subject": "events.>.x"}, "--subject"),
        ({"output_subject": "out.*"}, "--output-subject"),
        ({"alerts_subject": "a..b"}, "--alerts-subject"),
        ({"batch": 0}, "--batch"),
        ({"ack_wait_s": 0.1}, "--ack-wait"),
        ({"partition": None, "partitions": None, "output_subject": "out.{partition}"}, "--output-subject"),
    ])
    def test_bad_option_is_named(self, over: dict[str, object], option: str) -> None:
        """Each bad value is refused with the option's name."""
        with pytest.raises(OptionError) as err:
            _resolve(**over)
        assert err.value.option == option and str(err.value).startswith(option)

    def test_partition_from_a_pod_name(self) -> None:
        """A StatefulSet pod's ordinal is its partition; a name without one is refused."""
        assert partition_from_hostname("shellsieve-consume-7.shellsieve-consume.ns.svc") == 7
        assert _resolve(partition="auto", hostname="shellsieve-consume-2").partition == 2  # type: ignore[attr-defined]
        with pytest.raises(OptionError, match="--partition"):
            partition_from_hostname("worker")

    def test_partition_count_of_a_transform(self) -> None:
        """The N of {{partition(N,1)}} is read from a stream's transform; none without one."""
        assert partitions_of_transform("events.p.{{partition(8,1)}}.{{wildcard(1)}}") == 8
        assert partitions_of_transform("events.p.{{ Partition( 3 , 1 ) }}.x") == 3
        assert partitions_of_transform("events.{{wildcard(1)}}") is None


class TestPublishes:
    def test_ids_follow_the_input_sequence_and_part(self) -> None:
        """Each line's id is <stream>:<input seq>:<part>; an alert also goes to the alerts subject as :alert."""
        lab = Labeller("EVENTS", "out", "alerts")
        lab.fed(41)
        alert = json.dumps({"shellsieve": {"alerts": [{"rule": {"id": "r"}}]}}).encode()
        pubs = lab.label(b'{"a":1}\n' + alert + b"\n")
        assert [(p.subject, p.msg_id, p.copy) for p in pubs] == [
            ("out", "EVENTS:41:0", False), ("out", "EVENTS:41:1", False), ("alerts", "EVENTS:41:1:alert", True)]
        lab.fed(42)
        assert [p.msg_id for p in lab.label(b"x\n")] == ["EVENTS:42:0"]
        assert lab.label(b"") == []

    def test_a_batch_fed_as_one_block_gets_the_ids_of_one_feed_per_message(self, shipped: Ruleset) -> None:
        """label_block: the same publishes (ids, subjects, lines, alert copies) as feeding each message
        alone, over ECS events, an alert, a malformed line, a multi-line and a Fluent Bit payload."""
        alert = exec_of(BRANCHES["ncat"], host__id="h")
        payloads = [json.dumps({"host": {"id": "h"}, "process": {"command_line": "ls"}}).encode(),
                    json.dumps(alert).encode(), b"\xff\xfe not json", b'{"a":1}\n{"b":2}\n',
                    b'[[1.5,{"c":1}],[2,{"d":2}]]', b""]
        seqs = [7, 8, 9, 12, 13, 20]
        lines = [lines_of(p) for p in payloads]

        def publishes(pubs: list[Publish] | None) -> list[tuple[str, str, bytes, bool]]:
            assert pubs is not None
            return [(p.subject, p.msg_id, p.payload, p.copy) for p in pubs]

        one, each = Labeller("EVENTS", "out", "alerts"), Engine(shipped, Settings()).stream()
        apart: list[Publish] = []
        for seq, chunk in zip(seqs, lines, strict=True):
            one.fed(seq)
            apart += one.label(each.feed(chunk, 0.0))
        block = Engine(shipped, Settings()).stream().feed(b"".join(lines), 0.0)
        joined = Labeller("EVENTS", "out", "alerts").label_block(block, seqs, [c.count(b"\n") for c in lines])
        assert publishes(joined) == publishes(apart)
        assert len(apart) == 9 and sum(p.copy for p in apart) == 1  # 8 lines, the alert's copy
        assert {p.msg_id for p in apart} >= {"EVENTS:12:1", "EVENTS:13:1", "EVENTS:20:0", "EVENTS:8:0:alert"}

    def test_the_worker_feeds_auditd_message_by_message_and_json_as_blocks(self, shipped: Ruleset) -> None:
        """A batch holding auditd records is fed per message (its event leaves with its EOE message);
        the JSON batches around it go as blocks, each line labelled with its own message."""
        opts = _resolve(partition=None, partitions=None)
        worker = _Worker(opts, Engine(shipped, Settings()), None, None, structlog.get_logger(), True)  # type: ignore[arg-type]

        def msgs(*items: tuple[int, bytes]) -> list[Msg]:
            return [Msg(None, subject="events.h", reply=f"$JS.ACK.EVENTS.c.1.{seq}.{seq}.0.0", data=data)  # type: ignore[arg-type]
                    for seq, data in items]

        ids = [p.msg_id for p in worker.feed(msgs((1, b'{"a":1}'), (2, b'{"b":1}\n{"c":2}')))]
        assert ids == ["EVENTS:1:0", "EVENTS:2:0", "EVENTS:2:1"]
        audit = msgs((3, b'type=SYSCALL msg=audit(1700000000.000:1): arch=c000003e syscall=59 exe="/bin/ls"'),
                     (4, b'{"d":1}'), (5, b"type=EOE msg=audit(1700000000.000:1):"))
        assert [p.msg_id for p in worker.feed(audit)] == ["EVENTS:5:0", "EVENTS:5:1", "EVENTS:5:2"]
        assert [p.msg_id for p in worker.feed(msgs((6, b'{"e":1}'), (7, b'{"f":1}')))] == ["EVENTS:6:0", "EVENTS:7:0"]
        assert worker.blocks and [n for _, n in worker.unacked] == [1, 3, 4, 5, 6, 7, 8]

    def test_a_block_that_is_not_one_line_per_input_line_is_not_labelled(self) -> None:
        """Another line count, or an alert document among the lines: None (the worker then labels it as one)."""
        lab = Labeller("EVENTS", "out", "")
        assert lab.label_block(b"a\nb\n", [1, 2], [1, 2]) is None
        assert lab.label_block(b"a\n" + DOC_START + b'"x":1}}\n', [1, 2], [1, 1]) is None
        assert [p.msg_id for p in lab.label_block(b"a\nb\nc\n", [1, 2], [1, 2]) or []] == [
            "EVENTS:1:0", "EVENTS:2:0", "EVENTS:2:1"]

    def test_what_is_an_alert(self) -> None:
        """Our alerts and alert documents are; an input's own `shellsieve` (moved to shellsieve.input) is not."""
        assert is_alert(b'{"shellsieve":{"alerts":[{}]}}')
        assert is_alert(DOC_START + b'"x":1}}')
        assert not is_alert(b'{"shellsieve":{"input":{"alerts":[1]}}}')
        assert not is_alert(b'{"message":"\\"shellsieve\\""}')
        assert not is_alert(b'not json "shellsieve"')


class TestPayload:
    def test_fluent_bit_batches_become_lines(self) -> None:
        """[[ts, record], ...] (Fluent Bit's nats output) is one line per record; anything else as it came."""
        assert lines_of(b'[[1.5,{"a":1}],[2,{"b":[1,2]}]]') == b'{"a":1}\n{"b":[1,2]}\n'
        assert lines_of(b'{"a":1}') == b'{"a":1}\n'
        assert lines_of(b'{"a":1}\n{"b":2}\n') == b'{"a":1}\n{"b":2}\n'
        assert lines_of(b"[[1,2]]") == b"[[1,2]]\n"
        assert lines_of(b"\xff\xfe") == b"\xff\xfe\n"


class TestCommand:
    def test_bad_option_exits_2_before_connecting(self) -> None:
        """--partition past --partitions: exit 2 naming it, before any rule loads or server is tried."""
        proc = subprocess.run([sys.executable, "-m", "shellsieve", "consume", "--partition", "2", "--partitions", "2"],
                              check=False, capture_output=True, timeout=60)
        assert proc.returncode == 2
        (failed,) = [json.loads(line) for line in proc.stderr.splitlines() if b"startup_failed" in line]
        assert failed["option"] == "--partition"

    def test_missing_client_names_the_extra(self) -> None:
        """Without nats-py: exit 2 naming pip install 'shellsieve[nats]'."""
        code = ("import sys; sys.modules['nats'] = None; from shellsieve.cli import main; "
                "sys.exit(main(['consume']))")
        proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, timeout=60)
        assert proc.returncode == 2
        assert b"pip install 'shellsieve[nats]'" in proc.stderr
