"""--watch: poll the rule files and exceptions files; a change that has settled asks for a reload.

Polling, not inotify: the standard library has no inotify, and a poll of file metadata every couple
of seconds costs little (a listing and a stat per file) while it also sees files on network mounts
and changes made through a symlinked folder (a Kubernetes ConfigMap swaps one). A change is acted on
once two polls in a row agree, so an editor writing a file in steps, a `git pull` touching many, or
a copy in progress make one reload, of the finished files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from shellsieve.rules.discover import rule_files

__all__ = ["Watcher", "signature"]

Signature = tuple[tuple[str, int, int, int], ...]


def signature(paths: Iterable[Path], extra: Iterable[Path] = ()) -> Signature:
    """(path, inode, size, mtime in ns) of every rule file under `paths` and of every `extra` file;
    a file that cannot be read is (path, -1, -1, -1), so its appearing or vanishing is a change."""
    out = []
    for f in [*rule_files(paths), *extra]:
        try:
            st = os.stat(f)
            out.append((str(f), st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(f), -1, -1, -1))
    return tuple(out)


class Watcher:
    """A daemon thread calling `request("watch")` once the files' signature changed and then held
    still for one interval."""

    def __init__(self, paths: list[Path], extra: list[Path], interval_s: float,
                 request: Callable[[str], object], seen: Signature | None = None) -> None:
        self.paths, self.extra, self.interval = paths, extra, interval_s
        self._request = request
        self._stop = threading.Event()
        # what the running rules were read from: taken before they were read, if given
        self._seen = seen if seen is not None else signature(paths, extra)
        self._thread = threading.Thread(target=self._watch, name="watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        last = self._seen
        while not self._stop.wait(self.interval):
            now = signature(self.paths, self.extra)
            if now == last and now != self._seen:
                self._seen = now
                self._request("watch")
            last = now
