"""Stop signals as a flag the loop reads between batches, and a wakeup fd that ends its select().

A handler never raises: an exception raised between a read returning and its bytes being kept, or
in the middle of a write, loses or tears a line. SIGTERM and SIGINT ask the loop to stop (it stops
after the batch in hand, whole); SIGHUP is counted: the loop asks for a rule reload (never a stop: a
stray `kill -HUP` from logrotate must not stop the pipeline).

`HangupLatch` catches SIGHUP from the moment the options are read until the loop's own handlers are
in: a `systemctl reload` during a long first compile would otherwise kill the process (SIGHUP's
default action); the loop then reloads once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopSignals", "HangupLatch"]

_STOP = {signal.SIGTERM: "sigterm", signal.SIGINT: "sigint"}
_HANGUP = (signal.SIGHUP,)

# What signal.signal takes and returns (typeshed's alias for it is private); None: a handler that
# was not set from Python
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class HangupLatch:
    """Counts SIGHUP until closed (main thread only; elsewhere it catches nothing)."""

    def __init__(self) -> None:
        self.count = 0
        self._old: _Handler = None
        self._installed = False

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    def install(self) -> HangupLatch:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGHUP, self._on_hangup)
            self._installed = True
        return self

    def close(self) -> None:
        if self._installed:
            signal.signal(signal.SIGHUP, self._old if self._old is not None else signal.SIG_DFL)
            self._installed = False


class StopSignals:
    """Context manager: while inside, `reason` is set by the first stop signal; `hangups` counts SIGHUP
    (from `latch`'s count when one caught some before)."""

    def __init__(self, latch: HangupLatch | None = None) -> None:
        self.reason: str | None = None
        self.hangups = 0
        self._latch = latch
        self.wake_fd: int | None = None  # readable once a signal arrived (only in the main thread)
        self._write_fd: int | None = None
        self._old: dict[int, _Handler] = {}
        self._old_wakeup = -1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum in _HANGUP:
            self.hangups += 1
        elif self.reason is None:
            self.reason = _STOP[signal.Signals(signum)]

    def drain(self) -> None:
        """Empty the wakeup pipe (the handler already recorded what arrived)."""
        if self.wake_fd is None:
            return
        try:
            while os.read(self.wake_fd, 512):
                pass
        except BlockingIOError:
            pass

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals are delivered to the main thread only; nothing to catch here
        self.wake_fd, self._write_fd = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._write_fd, False)
        self._old_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in (*_STOP, *_HANGUP):
            self._old[sig] = signal.signal(sig, self._on_signal)
        if self._latch is not None:  # read after our handler is in: no SIGHUP falls between the two
            self.hangups += self._latch.count
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.wake_fd is None:
            return
        for sig, old in self._old.items():
            if old is not None:  # None: a handler not set from Python; there is nothing to put back
                signal.signal(sig, old)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self.wake_fd)
        if self._write_fd is not None:  # made with wake_fd, one pipe
            os.close(self._write_fd)
        self.wake_fd = self._write_fd = None
