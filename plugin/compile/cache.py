"""On-disk cache of the compiled Hyperscan database, so large rule sets start fast.

The file is named by a hash of everything the database is built from: the bytes of every rule
file, the field maps, the versions of shellsieve, Hyperscan and this format, and shellsieve's code.
Beside the databases it keeps the rule model and the pattern layout derived from it (a warm start
derives nothing); the SINGLEMATCH twin is a file of its own, written when first built; and a hard
link names the entry by its patterns' digest, so rule files changed where no pattern did reuse it.
Its content is checked again before use: the digest of the pattern list (derived from the rules, or
the kept layout's) must equal the databases', and the file must match the sha256 it starts with
(Hyperscan loads a corrupt database without complaint and fails only when scanning). Anything that
does not check out is rebuilt and rewritten, never trusted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import threading
from collections.abc import Iterable
from importlib import metadata
from typing import Any
from pathlib import Path

import hyperscan as hs
import msgspec

__all__ = ["CacheEntry", "DatabaseCache", "default_cache_dir", "cache_key", "code_digest", "patterns_digest",
           "encode_model", "decode_model", "read_checked", "write_checked"]

# 2: a field and a line database; 3: and the line database in SINGLEMATCH mode; 4: and the rule model;
# 5: and the pattern layout, the SINGLEMATCH twin moved to a file of its own, built when first needed
FORMAT = 5


class CacheEntry(msgspec.Struct, frozen=True):
    format: int
    patterns_digest: bytes  # sha256 of the (expression, flags) lists the databases were compiled from
    database: bytes  # hs.dumpb of the field database
    line_database: bytes  # hs.dumpb of the line database
    # Per regex that Hyperscan cannot run as written: (expression, flags) -> flags used, or an error.
    resolutions: list[tuple[bytes, int, int, str]] = []
    # The loaded rules after selection and the loaders' diagnostics, pickled (cli.py `build`), so a
    # warm start parses no rule file and imports no rule-format library. b"": not kept.
    model: bytes = b""
    # What compile_rules derived from that model (compile/ruleset.py `_Saved`), pickled: the rules
    # kept, the pattern layout and the diagnostics, so a warm start decodes them instead of deriving
    # the pattern lists again. Used only with the model it was derived from. b"": not kept.
    layout: bytes = b""


class _SingleEntry(msgspec.Struct, frozen=True):
    """The line database with HS_FLAG_SINGLEMATCH, in a file beside its entry (`<key>.single.hsdb`):
    built only when a scan first needs it (run/match.py, run/longline.py), then kept."""

    format: int
    patterns_digest: bytes  # the entry's: a twin of other patterns is not used
    database: bytes


def default_cache_dir() -> Path:
    """$SHELLSIEVE_CACHE_DIR, else $XDG_CACHE_HOME/shellsieve, else ~/.cache/shellsieve."""
    if env := os.environ.get("SHELLSIEVE_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shellsieve"


@functools.cache
def code_digest() -> bytes:
    """sha256 of shellsieve's own source files (3 ms): an entry keeps what the code derived from the
    rules (the layout, the loaded rules), and an editable install changes its code, not its version."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.digest()


def cache_key(rule_files: Iterable[Path], field_maps: Iterable[object]) -> str:
    """Hash of the rule files' paths and bytes, the field maps, the library versions and the code."""
    from shellsieve import __version__

    # the distribution's version: hyperscan.__version__ holds the same, but its stub does not declare it
    hs_version = metadata.version("hyperscan")
    h = hashlib.sha256(f"shellsieve {__version__} hyperscan {hs_version} format {FORMAT}\n".encode())
    h.update(code_digest())
    for m in field_maps:
        h.update(repr(m).encode())
    for f in sorted(rule_files):
        h.update(str(f).encode() + b"\0")
        h.update(_file_digest(f))
    return h.hexdigest()


# Bytes of a rule file hashed at most: past the loader's cap (rules/source.py, 16 MiB) a file is
# refused whatever it holds, so its size and head name it well enough, and a huge file costs no
# more than that to hash.
_HASHED_BYTES = (16 << 20) + 1


def _file_digest(f: Path) -> bytes:
    """sha256 of the file's head and size; an unreadable file is hashed as its error."""
    h = hashlib.sha256()
    try:
        with open(f, "rb") as fh:
            h.update(os.fstat(fh.fileno()).st_size.to_bytes(8, "little"))
            left = _HASHED_BYTES
            while left and (chunk := fh.read(min(left, 1 << 20))):
                h.update(chunk)
                left -= len(chunk)
    except OSError as exc:
        h.update(f"unreadable: {exc.strerror}".encode())
    return h.digest()


def patterns_digest(patterns: Iterable[tuple[bytes, int]]) -> bytes:
    h = hashlib.sha256()
    for expression, flags in patterns:
        h.update(len(expression).to_bytes(4, "little") + expression + flags.to_bytes(4, "little"))
    return h.digest()


def encode_model(rules: list[Any], diags: list[Any]) -> bytes:
    """The rule model (Rule structs after selection, the loaders' diagnostics) for CacheEntry.model.
    Pickle, not msgpack: the expression tree (model/expr.py) holds frozensets, compiled regexes and
    other values msgpack would not give back as they were. An entry is read only from a file and
    directory no one else can write (`_trusted`), and is sha256-checked against corruption."""
    return pickle.dumps((rules, diags), protocol=pickle.HIGHEST_PROTOCOL)


def decode_model(blob: bytes) -> tuple[list[Any], list[Any]] | None:
    """The (rules, diagnostics) kept by `encode_model`, or None if there are none or they do not load
    (a class renamed since: the version is in the key, but an editable install keeps its version)."""
    if not blob:
        return None
    try:
        rules, diags = pickle.loads(blob)
    except Exception:  # noqa: BLE001 - any failure means: load the rule files instead
        return None
    return rules, diags


def _trusted(path: Path) -> bool:
    """Whether an entry may be loaded at all: the sha256 only catches corruption, and an entry holds
    pickled rules and serialized databases, so it is read only when this user owns it and neither it
    nor its directory can be written by anyone else (as ssh treats its keys)."""
    me = os.geteuid()
    st, dst = path.stat(), path.parent.stat()
    return st.st_uid == me and dst.st_uid == me and not (st.st_mode | dst.st_mode) & 0o022


def read_checked(path: Path) -> bytes | str:
    """The payload of a file written by `write_checked`, or why it cannot be used: "cold" (no file),
    "untrusted" (see `_trusted`) or "corrupt" (its sha256 does not match)."""
    try:
        data = path.read_bytes()
        trusted = _trusted(path)
    except OSError:
        return "cold"
    if not trusted:
        return "untrusted"
    digest, payload = data[:32], data[32:]
    if len(data) < 32 or hashlib.sha256(payload).digest() != digest:
        return "corrupt"
    return payload


def write_checked(path: Path, payload: bytes) -> None:
    """Write sha256 + payload atomically (temp file + rename) in a directory only this user can
    write; a cache that cannot be written is only slower."""
    # Named by process and thread, not by tempfile.mkstemp (0.6 ms a file: 1 CPU-s for the 1,764
    # per-file entries of the public collections); O_EXCL all the same.
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left by a process of the same pid that died while writing
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _load(blob: bytes) -> hs.Database:
    db = hs.loadb(blob, hs.HS_MODE_BLOCK)
    db.scratch = hs.Scratch(db)  # a loaded database comes without the scratch space scans need
    return db


def _open(entry: CacheEntry) -> tuple[hs.Database | None, hs.Database] | None:
    """The entry's (field, line) databases, or None if they do not load."""
    try:
        line_db = _load(entry.line_database)
        field_db = _load(entry.database) if entry.database else None  # b"": rules without text patterns
    except hs.error:
        return None
    return field_db, line_db


class DatabaseCache:
    """One cache file for one key; `load` says why an entry was not usable. `held`: an entry kept in
    memory only (a reload's, handed over from the process that compiled it)."""

    def __init__(self, directory: Path | None, key: str) -> None:
        self.path = directory / f"{key}.hsdb" if directory is not None else None
        # cold (no entry) / warm (used) / stale / corrupt / untrusted (see _trusted), set by load and use
        self.status = "cold"
        self.model = b""  # written with the next entry stored (see CacheEntry.model)
        self._loaded: CacheEntry | None = None  # `load` reads the file once: build and compile both ask
        self._single: tuple[bytes, bytes] | None = None  # (patterns digest, dumpb) of the twin kept last

    @classmethod
    def held(cls, entry: CacheEntry | None = None, single: tuple[bytes, bytes] | None = None) -> DatabaseCache:
        """A cache of no file: `load` gives `entry`, `single` the twin of `single` ((patterns digest,
        hs.dumpb bytes)), `store` keeps what it is given in memory."""
        cache = cls(None, "")
        cache._loaded = entry
        cache._single = single
        cache.model = entry.model if entry is not None else b""  # the rules compiled with it are its model
        return cache

    @property
    def entry(self) -> CacheEntry | None:
        """The entry loaded or stored last (with its model), or None."""
        return self._loaded

    def load(self) -> CacheEntry | None:
        if self._loaded is not None or self.path is None:
            return self._loaded
        payload = read_checked(self.path)
        if isinstance(payload, str):
            self.status = payload
            return None
        try:
            entry: CacheEntry = msgspec.msgpack.decode(payload, type=CacheEntry)
        except msgspec.DecodeError:
            self.status = "corrupt"
            return None
        if entry.format != FORMAT:
            self.status = "stale"
            return None
        self._loaded = entry
        return entry

    def databases(self, entry: CacheEntry, digest: bytes) -> tuple[hs.Database | None, hs.Database] | None:
        """The cached (field, line) databases if built from exactly these patterns."""
        if entry.patterns_digest != digest:
            self.status = "stale"
            return None
        databases = _open(entry)
        self.status = "warm" if databases is not None else "corrupt"
        return databases

    def by_patterns(self, digest: bytes) -> tuple[hs.Database | None, hs.Database] | None:
        """The databases of another entry compiled from exactly these patterns, found by their digest:
        rule files changed where no pattern did (a comment, a description, a date, a severity)."""
        if self.path is None:
            return None
        payload = read_checked(self._by_patterns(digest))
        try:
            other = msgspec.msgpack.decode(payload, type=CacheEntry) if isinstance(payload, bytes) else None
        except msgspec.DecodeError:
            return None
        if other is None or other.format != FORMAT or other.patterns_digest != digest:
            return None
        return _open(other)

    def _by_patterns(self, digest: bytes) -> Path:
        assert self.path is not None
        return self.path.parent / "by-patterns" / f"{digest.hex()}.hsdb"

    def single(self, digest: bytes) -> hs.Database | None:
        """The SINGLEMATCH twin of the line database of `digest`, if one was kept (`store_single`)."""
        blob = self._single if self._single is not None and self._single[0] == digest else None
        if blob is None and self.path is not None:
            payload = read_checked(self._single_path())
            try:
                kept = msgspec.msgpack.decode(payload, type=_SingleEntry) if isinstance(payload, bytes) else None
            except msgspec.DecodeError:
                kept = None
            if kept is not None and kept.format == FORMAT and kept.patterns_digest == digest:
                blob = (digest, kept.database)
        if blob is None:
            return None
        try:
            return _load(blob[1])
        except hs.error:
            return None

    def store_single(self, digest: bytes, db: hs.Database) -> None:
        """Keep the twin built for the line database of `digest` (in memory for a held cache)."""
        blob = hs.dumpb(db)
        self._single = (digest, blob)
        if self.path is not None:
            write_checked(self._single_path(), msgspec.msgpack.encode(_SingleEntry(FORMAT, digest, blob)))

    def _single_path(self) -> Path:
        assert self.path is not None
        return self.path.with_suffix(".single.hsdb")

    def store(self, entry: CacheEntry) -> None:
        """Write atomically (temp file + rename); a cache that cannot be written is only slower."""
        entry = msgspec.structs.replace(entry, model=self.model)
        self._loaded = entry
        if self.path is None:
            return
        write_checked(self.path, msgspec.msgpack.encode(entry))
        # A second name by the patterns' digest (a hard link: no copy), for `by_patterns`
        link = self._by_patterns(entry.patterns_digest)
        tmp = link.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{link.name}")
        try:
            link.parent.mkdir(mode=0o700, exist_ok=True)
            os.link(self.path, tmp)
            os.replace(tmp, link)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
