"""Per rule file, what its loader made of it (rules and diagnostics), kept on disk: when one file of a
collection changes, the others are not parsed again (EQL parsing alone is 4.5 of the 9.4 CPU-seconds
of loading the public collections).

An entry is named by a hash of the file's path (rules carry it in their locations), its bytes, the
versions of the libraries a loader uses, shellsieve's code and this format; it is read through the
same checks as the database cache (compile/cache.py `read_checked`: owner, permissions, sha256), and
one that does not check out or load is parsed again, never trusted.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from importlib import metadata
from pathlib import Path

from shellsieve.compile.cache import code_digest, read_checked, write_checked
from shellsieve.diagnostics import Diagnostic
from shellsieve.model.rule import Rule

__all__ = ["LoadedCache"]

FORMAT = 1
# What a loader's output depends on besides the file: its parsers, and msgspec (the rule structs).
_LIBRARIES = ("eql", "lark", "pysigma", "PyYAML", "msgspec")

Loaded = tuple[list[Rule], list[Diagnostic]]


def _versions() -> bytes:
    found = []
    for name in _LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return f"format {FORMAT} python {sys.version_info[:2]} {' '.join(found)}\n".encode() + code_digest()


class LoadedCache:
    """The loaded-rules entries of one cache directory (its `files/` folder)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "files"
        self._salt: bytes | None = None
        self.hits = 0  # files whose rules came from an entry (for tests and the bench)

    def key(self, path: Path, data: bytes) -> str:
        if self._salt is None:
            self._salt = _versions()
        h = hashlib.sha256(self._salt)
        h.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
        h.update(data)
        return h.hexdigest()

    def get(self, key: str) -> Loaded | None:
        payload = read_checked(self.directory / f"{key}.rules")
        if isinstance(payload, str):
            return None
        try:
            rules, diags = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - any failure means: parse the file again
            return None
        self.hits += 1
        return list(rules), list(diags)

    def put(self, key: str, loaded: Loaded) -> None:
        write_checked(self.directory / f"{key}.rules", pickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL))
