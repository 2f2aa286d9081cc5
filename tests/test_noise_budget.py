"""The noise budget (docs/noise.md): the benign corpus generator, the reverse-shell stream, the scoring,
and (slow) the recommended selection measured on both: at most 1% of benign events alerted, and no
reverse shell that the whole collections alert lost to the selection."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import msgspec
import pytest

from conftest import ROOT, RULESETS
from corpus import benign, lookalikes
from corpus.payloads import payloads
from corpus.budget import BUDGET, COLLECTIONS, RECOMMENDED, SELECTION, corpora, measure, read_options, score
from corpus.shells import Shell, seed_shells, shells

from shellsieve.rules.exceptions import load_exceptions


class Parent(msgspec.Struct, forbid_unknown_fields=True):
    pid: int
    entity_id: str
    name: str
    executable: str
    command_line: str
    args: list[str]
    args_count: int


class StartedProcess(Parent, forbid_unknown_fields=True):
    working_directory: str
    parent: Parent


class Host(msgspec.Struct):
    id: str
    name: str
    hostname: str
    os: dict[str, str]


class Event(msgspec.Struct):
    kind: str
    category: list[str]
    type: list[str]
    action: str
    dataset: str
    module: str


class Named(msgspec.Struct):
    id: str
    name: str


class ProcessStart(msgspec.Struct, forbid_unknown_fields=True):
    """The ECS fields (types as ECS defines them) of an Elastic Defend process start."""
    timestamp: str = msgspec.field(name="@timestamp")
    agent: dict[str, str] = {}
    ecs: dict[str, str] = {}
    event: Event | None = None
    host: Host | None = None
    process: StartedProcess | None = None
    user: Named | None = None
    group: Named | None = None


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    return benign.events()


class TestBenignCorpus:
    def test_deterministic_for_a_seed(self, corpus: list[dict[str, Any]]) -> None:
        """The same seed gives the same events; another seed other command lines."""
        assert benign.events() == corpus
        other = {e["process"]["command_line"] for e in benign.events(seed=1)}
        assert other != {e["process"]["command_line"] for e in corpus}

    def test_at_least_3000_distinct_command_lines(self, corpus: list[dict[str, Any]]) -> None:
        """Every event has its own command line, and there are at least 3,000 of them."""
        lines = [e["process"]["command_line"] for e in corpus]
        assert len(set(lines)) == len(lines) >= 3000

    def test_valid_ecs_process_starts(self, corpus: list[dict[str, Any]]) -> None:
        """Each event decodes as an ECS process start with typed fields, args matching args_count, in time order."""
        dec = msgspec.json.Decoder(ProcessStart)
        times = []
        for ev in corpus:
            doc = dec.decode(msgspec.json.encode(ev))
            assert doc.event is not None and doc.process is not None and doc.user is not None
            assert doc.event.category == ["process"] and doc.event.type == ["start"] and doc.event.kind == "event"
            assert doc.process.args_count == len(doc.process.args) >= 1
            assert doc.process.name == doc.process.executable.rsplit("/", 1)[-1]
            assert doc.process.parent.name == doc.process.parent.executable.rsplit("/", 1)[-1]
            assert doc.user.id.isdigit()
            times.append(datetime.fromisoformat(doc.timestamp.replace("Z", "+00:00")))
        assert times == sorted(times)

    def test_realistic_parents_and_users(self, corpus: list[dict[str, Any]]) -> None:
        """Web-server children run as euid 33, cron lines as a shell under cron, dpkg scripts as root; every
        category is represented."""
        web = [e for e in corpus if e["process"]["parent"]["name"] in ("php-fpm8.2", "php-fpm8.1", "apache2")]
        assert web and {e["user"]["id"] for e in web} == {"33"}
        cron = [e for e in corpus if e["process"]["parent"]["name"] == "cron"]
        assert cron and {e["process"]["name"] for e in cron} == {"dash"}
        assert {e["user"]["id"] for e in cron if "run-parts" in e["process"]["command_line"]} == {"0"}
        dpkg = [e for e in corpus if e["process"]["parent"]["name"] == "dpkg"]
        assert dpkg and {e["user"]["id"] for e in dpkg} == {"0"}
        parents = Counter(e["process"]["parent"]["name"] for e in corpus)
        for p in ("Runner.Worker", "gitlab-runner", "containerd-shim-runc-v2", "systemd", "node", "uwsgi", "logrotate"):
            assert parents[p] > 0, p


class TestShells:
    def test_seed_cases_are_all_there(self) -> None:
        """Seed 000's five commands, seed 001's payload and 96 variants, seed 002's 15 branches with connections."""
        labels = Counter(s.label.split(":")[0] for s in seed_shells())
        assert labels == {"seed000": 5, "seed001": 97, "seed002": 15}

    def test_one_stream_in_time_order(self) -> None:
        """Each shell has entity ids of its own, a process start first, and the stream is in time order."""
        found = shells(peers=False)
        stamps = [e["@timestamp"] for s in found for e in s.events]
        assert stamps == sorted(stamps)
        assert len({s.events[0]["process"]["entity_id"] for s in found}) == len(found)
        assert all(s.events[0]["event"]["category"] == ["process"] for s in found)


class TestIssue24Corpora:
    def test_payloads_and_lookalikes_join_in_time_order(self) -> None:
        """corpora(lookalikes=True, payloads=True): the payload corpus's shells before the others, the
        look-alikes before the benign events, every event later than the one before."""
        shell_list, events = corpora(count=50, lookalikes=True, payloads=True)
        n = len(payloads())
        assert [s.label.split(":", 1)[0] for s in shell_list[:n]] == [p.family for p in payloads()]
        assert not shell_list[n].label.startswith(tuple(p.family + ":" for p in payloads()))
        assert len(events) == 50 + len(lookalikes.commands())
        stamps = [e["@timestamp"] for s in shell_list for e in s.events] + [e["@timestamp"] for e in events]
        assert stamps == sorted(stamps)


class TestSelectionFile:
    def test_options_and_their_justification(self) -> None:
        """The args file holds distinct --exclude-rule options and one exceptions file that loads
        clean; docs/noise.md justifies each rule id and the exception."""
        assert RECOMMENDED == read_options(SELECTION) and RECOMMENDED
        excludes = [opt for opt in RECOMMENDED if opt.startswith("--exclude-rule=")]
        files = [opt.removeprefix("--exceptions=") for opt in RECOMMENDED if opt.startswith("--exceptions=")]
        assert len(excludes) + len(files) == len(RECOMMENDED) and len(files) == 1
        ids = [opt.removeprefix("--exclude-rule=") for opt in excludes]
        assert len(set(ids)) == len(ids)
        doc = (ROOT / "docs" / "noise.md").read_text()
        assert [rid for rid in ids if rid[:8] not in doc] == []
        entries, diags = load_exceptions(ROOT / files[0])
        assert diags == [] and entries
        assert [rid for e in entries for rid in e.rules if rid[:8] not in doc] == []
        assert "3e102cd9" in doc and "nc -z" in doc

    def test_comments_and_blank_lines(self, tmp_path: Any) -> None:
        """`#` starts a comment anywhere on a line; blank and comment-only lines give no option."""
        path = tmp_path / "x.args"
        path.write_text("# head\n\n--min-severity=medium  # why\n  --tag=attack.t1059\n")
        assert read_options(path) == ["--min-severity=medium", "--tag=attack.t1059"]


class TestScore:
    def test_rate_rules_and_misses(self) -> None:
        """A shell counts as alerted when any of its events is; benign events alerted are counted per rule."""
        hit = {"shellsieve": {"alerts": [{"rule": {"id": "r1", "name": "one"}}, {"rule": {"id": "r2", "name": "two"}}]}}
        shell_list = [Shell("caught", [{}, {}]), Shell("lost", [{}])]
        out = [{}, hit, {}, hit, {}, {}, {"shellsieve": {"alerts": [{"rule": {"id": "r2", "name": "two"}}]}}]
        s = score(out, shell_list, 4)
        assert (s.benign, s.benign_alerted, s.rate, s.missed) == (4, 2, 0.5, ["lost"])
        assert s.rules == {"r1": 1, "r2": 2} and s.names == {"r1": "one", "r2": "two"}

    def test_output_must_match_the_input(self) -> None:
        """An output with another number of events than went in is an error, not a score."""
        with pytest.raises(ValueError, match="output events"):
            score([{}], [Shell("s", [{}])], 1)


@pytest.mark.slow
@pytest.mark.skipif(not RULESETS.is_dir(), reason="the public collections (../shared/rulesets) are absent")
class TestBudget:
    def test_recommended_selection_meets_the_budget(self) -> None:
        """With the recommended selection, at most 1% of benign events and look-alikes alert, and every reverse
        shell that the whole collections alert still alerts; with shellsieve's own rules both alert every shell
        of the seeds and of issue 24's payload corpus (docs/noise.md)."""
        corpus = corpora(lookalikes=True, payloads=True)
        everything, chosen = measure(COLLECTIONS, corpus), measure(COLLECTIONS + RECOMMENDED, corpus)
        assert everything.rate > BUDGET  # the budget needs the selection at all
        assert chosen.rate <= BUDGET, chosen.rules.most_common(10)
        assert set(chosen.missed) <= set(everything.missed)
        assert everything.missed == chosen.missed == []
