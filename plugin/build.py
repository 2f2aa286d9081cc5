"""Rules from files to a running Ruleset: load, select, compile, through the cache when there is one.

`build` is what a start does. A reload splits it in two: `build_entry` runs in a child process (the
parsing and the Hyperscan compiles, off the filter's hot path) and hands back the cache entry it
made or found; `from_entry` turns that entry into a Ruleset in the filter's process without parsing
a rule file or compiling a database.
"""

from __future__ import annotations

from pathlib import Path

import hyperscan as hs
import msgspec

from shellsieve.compile.cache import CacheEntry, DatabaseCache, cache_key, decode_model, encode_model
from shellsieve.compile.ruleset import Ruleset, compile_rules
from shellsieve.diagnostics import Diagnostic
from shellsieve.model.fields import FIELD_MAPS
from shellsieve.model.rule import Rule
from shellsieve.model.selection import Selection, select
from shellsieve.noise import noisy_rules
from shellsieve.rules.discover import load_rules, rule_files, shipped_patterns
from shellsieve.rules.loaded_cache import LoadedCache

__all__ = ["build", "build_entry", "from_entry", "BuildError", "HandOver"]

Built = tuple[list[Rule], Ruleset, list[Diagnostic]]


class HandOver(msgspec.Struct, frozen=True):
    """What a reload's compile process sends: the cache entry, and the line database's SINGLEMATCH
    twin built there too, so that the filter never compiles it (compile/lazy_database.py)."""

    entry: CacheEntry
    single_digest: bytes
    single: bytes


class BuildError(Exception):
    """An entry handed over that cannot be used (it does not decode, or holds no rule model)."""


def build(paths: list[Path] | None, cache_dir: Path | None = None, selection: Selection = Selection()) -> Built:  # noqa: B008  frozen: one shared default is safe
    """Load rules from `paths` (default: shipped patterns), keep those `selection` keeps, compile
    them; with `cache_dir`, reuse the database compiled last time from the same files and selection."""
    rules, ruleset, diags, _ = _build(paths, cache_dir, selection)
    return rules, ruleset, diags


def build_entry(paths: list[Path] | None, cache_dir: Path | None, selection: Selection) -> bytes:
    """`build`, returning the cache entry (rule model and serialized databases) as bytes for
    `from_entry`; with no `cache_dir` the entry is made in memory only."""
    _, ruleset, _, cache = _build(paths, cache_dir, selection, keep_entry=True)
    entry = cache.entry if cache is not None else None
    if entry is None:  # pragma: no cover - a build through a cache always leaves its entry
        raise BuildError("the build left no cache entry")
    twin = ruleset.single_database
    assert twin is not None  # compile_rules always makes one
    return msgspec.msgpack.encode(HandOver(entry, twin.digest, hs.dumpb(twin.database())))


def from_entry(blob: bytes) -> Built:
    """The rules, Ruleset and diagnostics of an entry made by `build_entry`: no rule file is read and
    no database compiled (its patterns are the ones the entry was compiled from)."""
    try:
        handed: HandOver = msgspec.msgpack.decode(blob, type=HandOver)
    except msgspec.DecodeError as exc:
        raise BuildError(f"the compiled rules could not be read: {exc}") from None
    entry = handed.entry
    model = decode_model(entry.model)
    if model is None:
        raise BuildError("the compiled rules hold no rule model")
    rules, diags = model
    cache = DatabaseCache.held(entry, (handed.single_digest, handed.single))
    ruleset, cdiags = compile_rules(rules, cache)
    return rules, ruleset, diags + cdiags + noisy_rules(ruleset)


def _build(paths: list[Path] | None, cache_dir: Path | None, selection: Selection,
           keep_entry: bool = False) -> tuple[list[Rule], Ruleset, list[Diagnostic], DatabaseCache | None]:
    paths = paths or [shipped_patterns()]
    cache = None
    if cache_dir is not None:
        files = [f for f in rule_files(paths) if f.is_file()]
        cache = DatabaseCache(cache_dir, cache_key(files, [*FIELD_MAPS, selection]))
    elif keep_entry:
        cache = DatabaseCache.held()
    # Warm: the entry (keyed by the same files, field maps and selection) also holds the loaded
    # rules and their diagnostics, so no rule file is parsed and no rule-format library imported.
    entry = cache.load() if cache is not None else None
    model = decode_model(entry.model) if entry is not None else None
    if model is not None and entry is not None and cache is not None:
        rules, diags = model
        cache.model = entry.model  # kept as read, should the databases need rebuilding
    else:
        # Per file too: when one rule file changed, only it is parsed again.
        rules, ldiags = load_rules(paths, LoadedCache(cache_dir) if cache_dir is not None else None)
        rules, sdiags = select(rules, selection)
        diags = ldiags + sdiags
        if cache is not None:
            cache.model = encode_model(rules, diags)
    ruleset, cdiags = compile_rules(rules, cache)
    return rules, ruleset, diags + cdiags + noisy_rules(ruleset), cache
