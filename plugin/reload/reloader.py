"""One reload at a time, off the hot path; the result swapped in by the loop, between batches.

A request (SIGHUP, a changed rule file) wakes the reload thread. It spawns the compile process
(reload/child.py), waits for its cache entry, turns it into a Ruleset (build.py `from_entry`: no
parsing, no compiling), loads the --exceptions files against it, and checks it as a start would
(admit.py) plus one more rule: no error the running rules did not have. Its outcome goes to a queue
and a byte to the wake pipe; the loop, which selects on that pipe, calls `apply` between batches:
the engine swaps in the new rules (run/engine.py `swap`) or the failure is logged and counted.

Requests that arrive during a reload are coalesced into one more reload after it (the files may have
changed after the running one read them): however many SIGHUPs arrive, at most one waits.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shellsieve.admit import Refusal, admit, new_diagnostics
from shellsieve.build import BuildError, from_entry
from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Diagnostic
from shellsieve.model.exceptions import RuleException
from shellsieve.model.selection import Selection
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings

__all__ = ["RuleSource", "Reloader", "MAX_ERRORS_LOGGED"]

MAX_ERRORS_LOGGED = 20  # errors listed in one reload_failed event (all are counted)
SWITCH_INTERVAL_S = 0.0005  # while a reload loads its rules beside the loop (see `_reload`)


@dataclass(frozen=True)
class RuleSource:
    """What a reload reads again: the options the start was given."""

    paths: list[Path] | None
    cache_dir: Path | None
    selection: Selection
    exception_paths: list[Path] | None
    settings: Settings


@dataclass
class _Reloaded:
    trigger: str
    requests: int  # requests this reload answered: its own and those coalesced into it
    ruleset: Ruleset
    exceptions: list[RuleException]
    warnings: list[Diagnostic]  # new since the last load (rule warnings, expired exceptions), to log
    compile_cpu_s: float  # the compile process's CPU seconds
    load_s: float  # turning its entry into a Ruleset, in this process
    seconds: float  # from the start of the reload until ready


@dataclass
class _Failed:
    trigger: str
    requests: int
    reason: str
    seconds: float
    fields: dict[str, Any] = field(default_factory=dict)
    errors: list[Diagnostic] = field(default_factory=list)


class Reloader:
    """Start it once the engine runs; `request` from the loop (or the watcher's thread), `apply`
    from the loop when `wake_fd` is readable, `close` at the stop."""

    def __init__(self, source: RuleSource, running: list[Diagnostic], log: Any) -> None:
        self.source = source
        self.log = log
        self._baseline = running  # the diagnostics of the rules admitted last
        self._cond = threading.Condition()
        self._pending: str | None = None  # the trigger of the reload waiting to start
        self._pending_requests = 0
        self._busy = False
        self._closed = False
        self._outcomes: list[_Reloaded | _Failed] = []
        self._proc: Any = None  # the compile process while one runs
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._serve, name="reload", daemon=True)
        self._thread.start()

    # -- the loop's side -----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """An outcome waits for `apply` (read without the lock: a stale False only defers it a batch)."""
        return bool(self._outcomes)

    def request(self, trigger: str) -> str:
        """Ask for a reload; returns "started", "queued" (one runs: this one follows it) or
        "coalesced" (one already waits: it will read the files after this request too)."""
        with self._cond:
            if self._closed:
                return "closed"
            self._pending_requests += 1
            if self._pending is not None:
                return "coalesced"
            self._pending = trigger
            self._cond.notify()
            return "queued" if self._busy else "started"

    def apply(self, engine: Engine) -> int:
        """Swap in what reloads made ready, log and count what failed; call between batches. Returns
        how many outcomes there were."""
        try:
            while os.read(self.wake_fd, 512):
                pass
        except BlockingIOError:
            pass
        with self._cond:
            outcomes, self._outcomes = self._outcomes, []
        for outcome in outcomes:
            if isinstance(outcome, _Failed):
                self._failed(engine, outcome)
            else:
                self._swap(engine, outcome)
        return len(outcomes)

    def close(self) -> None:
        """Stop the reload thread; a compile process still running is killed."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self._thread.join(timeout=5)
        if self._thread.is_alive():  # still loading: it may yet write the wake-up; the exit closes these
            return
        for fd in (self.wake_fd, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _swap(self, engine: Engine, ready: _Reloaded) -> None:
        t0 = time.perf_counter()
        changes = engine.swap(ready.ruleset, ready.exceptions, ready.compile_cpu_s + ready.load_s)
        engine.stats.reloads["ok"] += 1
        swap_s = time.perf_counter() - t0
        for d in ready.warnings:  # what the new rules and exceptions files brought, logged as at start
            level = {"error": "error", "info": "debug"}.get(d.severity, "warning")
            event = "exception_diagnostic" if d.code.code.startswith("SS5") else "rule_diagnostic"
            getattr(self.log, level)(event, **d.to_builtins())
        # The rules swapped out were frozen at the start (cli.py): unfreeze so their cycles can be
        # collected, then freeze the new ones, which live until the next reload.
        t1 = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.log.info("reloaded", trigger=ready.trigger, requests=ready.requests, **changes,
                      exceptions=len(ready.exceptions), patterns=engine.ruleset.pattern_count,
                      compile_cpu_s=round(ready.compile_cpu_s, 3), load_s=round(ready.load_s, 3),
                      swap_s=round(swap_s, 4), gc_s=round(time.perf_counter() - t1, 4),
                      seconds=round(ready.seconds, 3))

    def _failed(self, engine: Engine, failed: _Failed) -> None:
        engine.stats.reloads["failed"] += 1
        first = failed.errors[0] if failed.errors else None
        where = ({"path": first.location.path, "line": first.location.line, "rule_id": first.rule_id,
                  "error": first.render()} if first is not None else {})
        fields = {**failed.fields, **where, "errors": len(failed.errors) or failed.fields.get("errors", 0),
                  "detail": [_brief(d) for d in failed.errors[:MAX_ERRORS_LOGGED]]}
        self.log.error("reload_failed", trigger=failed.trigger, requests=failed.requests, reason=failed.reason,
                       seconds=round(failed.seconds, 3), running="the rules loaded before stay in force", **fields)

    # -- the reload thread --------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                trigger, requests = self._pending, self._pending_requests
                assert trigger is not None  # the wait above ends on a trigger or on closing
                self._pending, self._pending_requests = None, 0
                self._busy = True
            outcome = self._reload(trigger, requests)
            with self._cond:
                self._busy = False
                if self._closed:
                    return
                self._outcomes.append(outcome)
            try:
                os.write(self._wake_w, b"r")
            except (BlockingIOError, OSError):  # full: the loop has a wake-up waiting already
                pass

    def _reload(self, trigger: str, requests: int) -> _Reloaded | _Failed:
        t0 = time.monotonic()

        def failed(reason: str, fields: dict[str, Any] | None = None,
                   errors: list[Diagnostic] | None = None) -> _Failed:
            return _Failed(trigger, requests, reason, time.monotonic() - t0, fields or {}, errors or [])

        got = self._compile()
        if isinstance(got, str):
            return failed("compile failed", {"error": got})
        blob, cpu = got
        t1 = time.perf_counter()
        # The load is Python work in this thread, beside the loop's: a short switch interval hands
        # the interpreter lock back to the loop soon after each of its reads and writes, which
        # otherwise wait up to the default 5 ms each behind this thread.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            _, ruleset, diags = from_entry(blob)
            if ruleset.single_database is not None:
                ruleset.single_database.database()  # deserialized here, not by the first block needing it
        except BuildError as exc:
            return failed("compile failed", {"error": str(exc)})
        finally:
            sys.setswitchinterval(interval)
        del blob
        verdict = admit(ruleset, diags, self.source.settings, self.source.exception_paths)
        if isinstance(verdict, Refusal):
            return failed(verdict.reason, verdict.fields, list(verdict.diagnostics))
        fresh = new_diagnostics(diags, self._baseline)
        new = [d for d in fresh if d.severity == "error"]
        if new:
            return failed("rule errors the running rules do not have", {}, new)
        self._baseline = diags
        warnings = fresh + [d for d in verdict.exception_diagnostics if d.severity != "info"]
        return _Reloaded(trigger, requests, ruleset, verdict.exceptions, warnings, cpu,
                         time.perf_counter() - t1, time.monotonic() - t0)

    def _compile(self) -> tuple[bytes, float] | str:
        """The entry and CPU seconds of a compile process, or what went wrong."""
        src = self.source
        job = pickle.dumps((src.paths, src.cache_dir, src.selection))
        with self._cond:
            if self._closed:
                return "stopping"
            proc = subprocess.Popen([sys.executable, "-m", "shellsieve.reload.child"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self._proc = proc
        out, err = proc.communicate(job)
        with self._cond:
            self._proc = None
        try:
            kind, payload, cpu = pickle.loads(out)
        except Exception:  # noqa: BLE001 - killed, crashed, out of memory: no whole result came
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return f"the compile process ended without a result (exit status {proc.returncode}) {tail[0]}".strip()
        if kind != "ok":
            return str(payload)
        return payload, cpu


def _brief(d: Diagnostic) -> dict[str, Any]:
    return {"path": d.location.path, "line": d.location.line, "rule_id": d.rule_id, "code": d.code.code,
            "error": d.message}

