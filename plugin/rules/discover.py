"""Expand --rules paths, pick a loader by extension, merge rules and diagnostics."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.model.rule import Rule
from shellsieve.rules.identity import RuleIds
from shellsieve.rules.loaded_cache import LoadedCache
from shellsieve.rules.source import RuleFileError, read_rule_file

__all__ = ["OWN_RULESET", "load_rules", "rule_files", "seed_patterns", "shipped_patterns"]

# (path, its bytes as read_rule_file read them) -> rules and diagnostics
Loader = Callable[[Path, bytes], tuple[list[Rule], list[Diagnostic]]]


_SUFFIXES = (".xml", ".toml", ".yml", ".yaml")  # the file types `_loader` has a loader for


def _loader(path: Path) -> Loader | None:
    # Imported lazily so that `check` of a Sigma-only tree does not import eql, and the reverse.
    suffix = path.suffix.lower()
    if suffix == ".xml":
        from shellsieve.rules.wazuh import load_wazuh
        return load_wazuh
    if suffix == ".toml":
        from shellsieve.rules.elastic import load_elastic
        return load_elastic
    if suffix in (".yml", ".yaml"):
        from shellsieve.rules.sigma import load_sigma
        return load_sigma
    return None


def shipped_patterns() -> Path:
    """The rules installed with shellsieve (the repository's patterns/)."""
    from importlib.resources import files

    return Path(str(files("shellsieve.patterns")))


OWN_RULESET = "shellsieve"  # the folder of patterns/ holding shellsieve's own rules (docs/ruleset.md)


def seed_patterns() -> list[Path]:
    """The shipped rules without shellsieve's own ruleset: every folder of patterns/ but `shellsieve`."""
    root = shipped_patterns()
    return [p for p in sorted(root.iterdir()) if p.is_dir() and p.name != OWN_RULESET and not p.name.startswith("_")]


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Rule files under the given files and folders, sorted so ids and order are stable. Chosen by
    suffix alone, importing no loader: a warm start lists the files to key the cache, nothing more."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in _SUFFIXES)
        else:
            out.append(p)
    return out


def load_rules(paths: Iterable[Path], cache: LoadedCache | None = None) -> tuple[list[Rule], list[Diagnostic]]:
    """Every rule of every file; one bad rule or file is a Diagnostic, never an exception.

    A byte-identical copy of a file already read is read once: rule collections are often copied
    into several folders, and counting the copy would report its rules twice (loaded or skipped).
    Of two copies of one rule id in different files, the newer runs (rules/identity.py).
    With `cache`, a file's loader output is kept per file and reused while its bytes are the same.
    """
    ids = RuleIds()
    diags: list[Diagnostic] = []
    files: dict[bytes, Path] = {}
    for f in rule_files(paths):
        if f.suffix.lower() not in _SUFFIXES:  # before reading it: `--rules /dev/zero` is refused by name alone
            diags.append(Diagnostic(Code.PARSE, "error", Location(str(f)), None, f.suffix,
                                    "unknown rule file type (expected .xml, .toml, .yml)"))
            continue
        try:
            data = read_rule_file(f)
        except RuleFileError as exc:
            diags.append(Diagnostic(Code.PARSE, "error", Location(str(f)), None, "", str(exc)))
            continue
        digest = hashlib.sha256(data).digest()
        if digest in files:
            diags.append(Diagnostic(Code.DUPLICATE_ID, "info", Location(str(f)), None, "",
                                    f"identical copy of {files[digest]}; read once"))
            continue
        files[digest] = f
        got, problems = _load_file(f, data, cache)
        diags.extend(problems)
        if not got and not problems:
            # an empty file, or one whose elements are all of kinds no loader reads: a rule file
            # that yields nothing must say so, or `check --strict` passes a file that runs no rule
            diags.append(Diagnostic(Code.SCHEMA, "error", Location(str(f), 1), None, "",
                                    "no rule in the file"))
        diags.extend(d for d in map(ids.add, got) if d is not None)
    diags.extend(ids.superseded())
    return ids.rules, diags


def _load_file(f: Path, data: bytes, cache: LoadedCache | None) -> tuple[list[Rule], list[Diagnostic]]:
    """The loader's output for one file, from `cache` when it holds the same file (then the loader's
    library is not even imported)."""
    key = cache.key(f, data) if cache is not None else ""
    loaded = cache.get(key) if cache is not None else None
    if loaded is None:
        loader = _loader(f)
        assert loader is not None  # load_rules reads only the suffixes of _SUFFIXES
        loaded = loader(f, data)
        if cache is not None:
            cache.put(key, loaded)
    return loaded
