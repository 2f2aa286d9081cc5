"""A Hyperscan database compiled the first time it is scanned: the line database's SINGLEMATCH twin.

The twin is scanned only when a block passes its callback bound (run/match.py) or a line is over
`--max-line-bytes` (run/longline.py), which most runs never see; compiling it at start cost as much
as the line database itself (8 of the 46 CPU-seconds of a cold start with the public collections).
Once built it is kept in the cache (compile/cache.py `store_single`), so the next start loads it.
"""

from __future__ import annotations

import threading
from typing import Any

import hyperscan as hs

from shellsieve.compile.cache import DatabaseCache
from shellsieve.compile.database import Pattern, compile_database

__all__ = ["LazyDatabase"]


class LazyDatabase:
    """`scan` as hs.Database's; the database is loaded from `cache` or compiled from `patterns` first."""

    def __init__(self, patterns: list[Pattern], digest: bytes, cache: DatabaseCache | None) -> None:
        self._patterns = patterns
        self._digest = digest  # of the line database's patterns: names the twin in the cache
        self._cache = cache
        self._db: hs.Database | None = None
        self._lock = threading.Lock()  # `serve` scans from several threads: one compile
        self.compiled = False  # built here rather than loaded from the cache (for tests and stats)

    @property
    def built(self) -> bool:
        return self._db is not None

    @property
    def digest(self) -> bytes:
        """The line database's patterns digest: what names this twin (DatabaseCache.single)."""
        return self._digest

    def prepare(self) -> threading.Thread:
        """Load or compile the twin now, in a thread (Hyperscan's compile releases the interpreter
        lock): a filter that waited for the first overflowing block to compile it would hold that
        block, and every event behind it, for the whole compile (10 CPU-s with the public
        collections). A scan that needs it earlier waits for it."""
        thread = threading.Thread(target=self.database, name="single-match-twin", daemon=True)
        thread.start()
        return thread

    def database(self) -> hs.Database:
        db = self._db
        if db is not None:
            return db
        with self._lock:
            if self._db is None:
                db = self._cache.single(self._digest) if self._cache is not None else None
                if db is None:
                    db = compile_database(self._patterns)
                    self.compiled = True
                    if self._cache is not None:
                        self._cache.store_single(self._digest, db)
                self._db = db
            return self._db

    def scan(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
        return self.database().scan(data, *args, **kwargs)
