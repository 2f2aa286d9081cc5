"""The compile process of a reload: load, select and compile the rules, send back the cache entry.

A process of its own (spawned, so nothing of the filter's threads or sockets is inherited): the
parsing and the Hyperscan compiles hold the GIL for seconds to minutes, and in a thread of the
filter they would slow the events down by as much. It runs niced, so on a busy host the filter's
own work comes first, and it ignores the hang-ups and interrupts meant for the filter (which stops
it itself when it stops).
"""

from __future__ import annotations

import os
import resource
import signal
from multiprocessing.connection import Connection
from pathlib import Path

from shellsieve.model.selection import Selection

__all__ = ["compile_rules_in_child", "NICE"]

NICE = 10  # added to the filter's niceness


def compile_rules_in_child(conn: Connection, paths: list[Path] | None, cache_dir: Path | None,
                           selection: Selection) -> None:
    """Entry point of the compile process: sends ("ok", entry bytes, CPU seconds) or ("error", text)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICE)
    except OSError:  # a sandbox that refuses it: compile at the filter's priority
        pass
    try:
        from shellsieve.build import build_entry

        blob = build_entry(paths, cache_dir, selection)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(("ok", blob, usage.ru_utime + usage.ru_stime))
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the filter, which keeps its rules
        conn.send(("error", f"{type(exc).__name__}: {exc}", 0.0))
    finally:
        conn.close()
