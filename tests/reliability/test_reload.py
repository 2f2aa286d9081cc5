"""Hot reload of a real `shellsieve run` (and `serve`) child: SIGHUP and --watch under a stream of
numbered events. Every line leaves once, in order, whole, across every reload; a broken rule set
keeps the running rules and is logged (`reload_failed`, with the file, rule id and error) and
counted; SIGHUPs during a reload are coalesced; a SIGHUP during the first compile neither kills the
process nor is lost.

    python -m pytest tests/reliability/test_reload.py -m slow -q    # 20 reloads under load
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import msgspec
import pytest

from conftest import PATTERNS, RULESETS, rule_ids
from reliability.test_lifecycle import Filter, _count, _Feed, _seqs, _stopped
from test_reload_swap import EXTRA

MARKER_ID = "0b0d6b1e-3c1f-4d0e-9a55-5e1f0c0d0001"


def _rules(tmp: Path) -> Path:
    d = tmp / "rules"
    shutil.copytree(PATTERNS, d, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return d


def _marker(rules: Path, token: str) -> None:
    """The marker rule, alerting on command lines holding `token` (written whole, then renamed in)."""
    tmp = rules / "sigma" / ".extra.tmp"
    tmp.write_text(EXTRA.format(n=1, token=token))
    os.replace(tmp, rules / "sigma" / "extra.yml")


def _logs(f: Filter) -> list[dict[str, Any]]:
    with f.err.lock:
        data = bytes(f.err.data)
    return [msgspec.json.decode(x) for x in data.splitlines()]


def _wait(f: Filter, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        logs = _logs(f)
        if pred(logs):
            return logs
        assert f.proc.poll() is None, f"the filter exited: {logs[-3:]}"
        assert time.monotonic() < deadline, f"timed out; last logs: {logs[-3:]}"
        time.sleep(0.02)


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [x for x in logs if x["event"] == name]


def _outcomes(logs: list[dict[str, Any]]) -> int:
    return len(_events(logs, "reloaded")) + len(_events(logs, "reload_failed"))


def _marker_line(token: str) -> bytes:
    return msgspec.json.encode({"seq": -1, "process": {"command_line": f"echo {token}"},
                                "event": {"category": ["process"], "type": ["start"]},
                                "host": {"os": {"type": "linux"}}}) + b"\n"


def _last_and_marker(out: list[bytes], token: str) -> dict[str, Any]:
    doc = msgspec.json.decode(out[-1])
    assert doc["process"]["command_line"] == f"echo {token}"
    return doc


@pytest.fixture
def spawn(cache_dir: Path) -> Any:
    started: list[Filter] = []

    def make(*args: str) -> Filter:
        f = Filter(cache_dir, *args)
        started.append(f)
        return f

    yield make
    for f in started:
        f.kill()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


class TestUnderLoad:
    @pytest.mark.parametrize("reloads", [4, pytest.param(20, marks=pytest.mark.slow)])
    def test_reloads_lose_and_reorder_nothing(self, spawn: Any, tmp_path: Path, reloads: int) -> None:
        """Events stream in while the rules are changed and reloaded `reloads` times: every line
        leaves once, in order; the shipped rule alerts on every 50th line before, between and after
        the swaps (the output checks it line by line); the last marker rule is the one running."""
        rules = _rules(tmp_path)
        _marker(rules, "zz-token-0")
        f = spawn("--rules", str(rules))
        feed = _Feed(f.proc.stdin, _count(), close=False)
        f.wait_lines(2_000)
        for k in range(1, reloads + 1):
            _marker(rules, f"zz-token-{k}")
            f.proc.send_signal(signal.SIGHUP)
            _wait(f, lambda logs: _outcomes(logs) >= k)  # noqa: B023  called within this iteration
        feed.stop.set()
        feed.join(10)
        os.write(f.stdin_fd, _marker_line(f"zz-token-{reloads}") + _marker_line("zz-token-0"))
        f.proc.stdin.close()
        code, out, logs = f.finish(timeout=120)
        assert code == 0
        assert rule_ids(msgspec.json.decode(out[-2])) == [MARKER_ID]  # the newest marker runs
        assert rule_ids(msgspec.json.decode(out[-1])) == []  # the first one no longer does
        seqs = _seqs(out[:-2])
        assert seqs == list(range(len(seqs))) and len(seqs) > 2_000
        final = _stopped(logs)
        assert final["reloads"] == {"ok": reloads, "failed": 0}
        assert final["events_in"] == final["events_out"] == len(out)
        done = _events(logs, "reloaded")
        assert [x["trigger"] for x in done] == ["sighup"] * reloads
        assert all(x["changed"] == 1 and x["unchanged"] == x["rules"] - 1 for x in done)


def _bad_yaml(rules: Path) -> tuple[Path, str | None]:
    path = rules / "sigma" / "extra.yml"
    path.write_text("title: reload marker\nid: [unclosed\n")
    return path, None


def _costly_pattern(rules: Path) -> tuple[Path, str | None]:
    path = rules / "sigma" / "extra.yml"
    path.write_text(EXTRA.format(n=1, token="x").replace('CommandLine|contains: "x"',
                                                        "CommandLine|re: 'a{1,70000}b'"))
    return path, MARKER_ID


def _unknown_exception_field(rules: Path) -> tuple[Path, str | None]:
    path = rules.parent / "exceptions.yml"
    path.write_text("- rules: 100103\n  comment: a field no event has\n  when:\n"
                    "    - field: no.such.field\n      is: x\n")
    return path, None


class TestBrokenRules:
    @pytest.mark.parametrize("breakage", [_bad_yaml, _costly_pattern, _unknown_exception_field])
    def test_broken_files_keep_the_old_rules_until_fixed(self, spawn: Any, tmp_path: Path, breakage: Any) -> None:
        """A rule file saved broken (bad YAML, a pattern refused as too costly to compile, an
        exceptions entry naming a field the engine cannot read): the reload fails, is logged with
        the file, rule id and error and counted; the old rules keep alerting; fixed, it swaps in."""
        rules = _rules(tmp_path)
        _marker(rules, "zz-old")
        exceptions = tmp_path / "exceptions.yml"
        exceptions.write_text("[]\n")
        f = spawn("--rules", str(rules), "--exceptions", str(exceptions))
        _wait(f, lambda logs: bool(_events(logs, "started")))
        path, rule_id = breakage(rules)
        f.proc.send_signal(signal.SIGHUP)
        logs = _wait(f, lambda logs: _outcomes(logs) >= 1)
        failed = _events(logs, "reload_failed")
        assert len(failed) == 1, logs[-2:]
        assert failed[0]["path"] == str(path) and failed[0]["error"]
        assert failed[0]["rule_id"] == rule_id
        os.write(f.stdin_fd, _marker_line("zz-old"))
        f.wait_lines(1)
        assert rule_ids(msgspec.json.decode(bytes(f.out.data))) == [MARKER_ID]  # the old rules run
        exceptions.write_text("[]\n")
        _marker(rules, "zz-new")
        f.proc.send_signal(signal.SIGHUP)
        _wait(f, lambda logs: _outcomes(logs) >= 2)
        os.write(f.stdin_fd, _marker_line("zz-new"))
        f.proc.stdin.close()
        code, out, logs = f.finish()
        assert code == 0
        assert rule_ids(msgspec.json.decode(out[-1])) == [MARKER_ID]
        assert _stopped(logs)["reloads"] == {"ok": 1, "failed": 1}

    def test_rules_path_gone_at_reload(self, spawn: Any, tmp_path: Path) -> None:
        """The --rules folder moved away: the reload fails naming it, the old rules run on; moved
        back, the next SIGHUP reloads."""
        rules = _rules(tmp_path)
        _marker(rules, "zz-old")
        f = spawn("--rules", str(rules))
        _wait(f, lambda logs: bool(_events(logs, "started")))
        rules.rename(tmp_path / "elsewhere")
        f.proc.send_signal(signal.SIGHUP)
        logs = _wait(f, lambda logs: _outcomes(logs) >= 1)
        failed = _events(logs, "reload_failed")
        assert failed and failed[0]["path"] == str(rules), failed
        (tmp_path / "elsewhere").rename(rules)
        f.proc.send_signal(signal.SIGHUP)
        logs = _wait(f, lambda logs: _outcomes(logs) >= 2)
        assert len(_events(logs, "reloaded")) == 1
        os.write(f.stdin_fd, _marker_line("zz-old"))
        f.proc.stdin.close()
        code, out, logs = f.finish()
        assert code == 0 and rule_ids(msgspec.json.decode(out[-1])) == [MARKER_ID]


class TestSignals:
    def test_sighups_during_a_reload_are_coalesced(self, spawn: Any, tmp_path: Path) -> None:
        """Ten SIGHUPs in quick succession: one reload runs, one more follows for all the others;
        every request is answered by a reload (the `requests` of the reloads add up)."""
        rules = _rules(tmp_path)
        f = spawn("--rules", str(rules), "--no-cache")
        _wait(f, lambda logs: bool(_events(logs, "started")))
        for _ in range(10):
            f.proc.send_signal(signal.SIGHUP)
            time.sleep(0.02)
        logs = _wait(f, lambda logs: sum(x["requests"] for x in _events(logs, "reloaded"))
                     == len(_events(logs, "reload_requested")))
        time.sleep(1.0)  # nothing else is coming
        logs = _logs(f)
        done = _events(logs, "reloaded")
        assert 1 <= len(done) <= 2, done
        states = [x["state"] for x in _events(logs, "reload_requested")]
        assert states[0] == "started" and all(s in ("queued", "coalesced") for s in states[1:])
        assert sum(x["requests"] for x in done) == len(states)
        f.proc.stdin.close()
        assert f.finish()[0] == 0

    def test_sighup_during_the_first_compile(self, spawn: Any, tmp_path: Path) -> None:
        """SIGHUP while the first rules compile (SIGHUP's default action would kill the process): it
        is kept, and one reload follows the start."""
        rules = RULESETS / "sigma" / "linux" / "process_creation"
        assert rules.is_dir()
        f = spawn("--rules", str(rules), "--no-cache", "--metrics-addr", "127.0.0.1:0")
        _wait(f, lambda logs: bool(_events(logs, "metrics_listening")))
        f.proc.send_signal(signal.SIGHUP)
        sent_before_start = not _events(_logs(f), "started")
        logs = _wait(f, lambda logs: bool(_events(logs, "reloaded")), timeout=180)
        assert sent_before_start, "the compile ended before the signal: the test did not test it"
        assert [x["event"] for x in logs].index("started") < [x["event"] for x in logs].index("reload_requested")
        f.proc.stdin.close()
        code, _, logs = f.finish(timeout=60)
        assert code == 0 and _stopped(logs)["reloads"] == {"ok": 1, "failed": 0}


class TestWatch:
    def test_a_burst_of_writes_reloads_once(self, spawn: Any, tmp_path: Path) -> None:
        """--watch: a file written several times within one interval makes one reload, of the
        finished file."""
        rules = _rules(tmp_path)
        _marker(rules, "zz-old")
        f = spawn("--rules", str(rules), "--watch", "--watch-interval", "0.3")
        _wait(f, lambda logs: bool(_events(logs, "started")))
        for k in range(5):
            _marker(rules, f"zz-step-{k}")
            time.sleep(0.03)
        logs = _wait(f, lambda logs: _outcomes(logs) >= 1)
        time.sleep(1.5)  # four more intervals: no second reload
        logs = _logs(f)
        done = _events(logs, "reloaded")
        assert [x["trigger"] for x in done] == ["watch"]
        os.write(f.stdin_fd, _marker_line("zz-step-4"))
        f.proc.stdin.close()
        code, out, _ = f.finish()
        assert code == 0 and rule_ids(msgspec.json.decode(out[-1])) == [MARKER_ID]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:  # the thread ended
            pass
    return out


class TestCompileProcess:
    def test_a_compile_process_killed_fails_the_reload_only(self, spawn: Any, tmp_path: Path) -> None:
        """The compile process dies (the OOM killer, an operator's kill -9): the reload fails, the
        filter runs on with its rules, and the next SIGHUP reloads."""
        rules = RULESETS / "sigma" / "linux" / "process_creation"
        f = spawn("--rules", str(rules), "--no-cache")
        _wait(f, lambda logs: bool(_events(logs, "started")))
        f.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while not (pids := _children(f.proc.pid)):  # the reload thread's child: any task's children
            assert time.monotonic() < deadline, "no compile process appeared"
            time.sleep(0.005)
        os.kill(pids[0], signal.SIGKILL)
        logs = _wait(f, lambda logs: _outcomes(logs) >= 1)
        failed = _events(logs, "reload_failed")
        assert failed and "without a result" in failed[0]["error"], logs[-2:]
        f.proc.send_signal(signal.SIGHUP)
        logs = _wait(f, lambda logs: _outcomes(logs) >= 2)
        assert len(_events(logs, "reloaded")) == 1
        f.proc.stdin.close()
        code, _, logs = f.finish()
        assert code == 0 and _stopped(logs)["reloads"] == {"ok": 1, "failed": 1}
