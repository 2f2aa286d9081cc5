"""The compile process of a reload: load, select and compile the rules, send back the cache entry.

    python -m shellsieve.reload.child < job > result      (started by reload/reloader.py)

A process of its own, a fresh interpreter (nothing of the filter's threads, sockets or signal
handlers is inherited): the parsing and the Hyperscan compiles hold the interpreter lock for
seconds to minutes, and in a thread of the filter they would slow the events down by as much. It
runs niced, so on a busy host the filter's own work comes first, and it ignores the hang-ups and
interrupts meant for the filter (which stops it itself when it stops). The job (rule paths, cache
directory, selection) comes pickled on stdin; the result goes pickled to stdout: ("ok", entry
bytes, CPU seconds) or ("error", text, 0.0).
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from shellsieve.model.selection import Selection

__all__ = ["Job", "compile_job", "NICE"]

NICE = 10  # added to the filter's niceness

Job = tuple[list[Path] | None, Path | None, Selection]


def compile_job(job: Job) -> tuple[str, Any, float]:
    """("ok", the cache entry as bytes, CPU seconds of this process) or ("error", what went wrong, 0)."""
    paths, cache_dir, selection = job
    try:
        from shellsieve.build import build_entry

        blob = build_entry(paths, cache_dir, selection)
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the filter, which keeps its rules
        return "error", f"{type(exc).__name__}: {exc}", 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return "ok", blob, usage.ru_utime + usage.ru_stime


def main() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICE)
    except OSError:  # a sandbox that refuses it: compile at the filter's priority
        pass
    job = pickle.load(sys.stdin.buffer)
    sys.stdout.buffer.write(pickle.dumps(compile_job(job), protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
