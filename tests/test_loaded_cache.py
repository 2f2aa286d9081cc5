"""The per-rule-file cache of loaded rules: load_rules gives exactly what it gives uncached, and a
changed file is parsed again alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import PATTERNS
from shellsieve.rules.discover import load_rules, rule_files
from shellsieve.rules.loaded_cache import LoadedCache


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The shipped rules, an identical copy of one file (read once) and a newer copy of one Sigma
    rule (of two copies of one id, the newer runs)."""
    d = tmp_path / "rules"
    shutil.copytree(PATTERNS, d, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    first = sorted(d.rglob("*.yml"))[0]
    shutil.copy(first, d / "identical-copy.yml")
    first.with_name("zz-newer-" + first.name).write_text(
        first.read_text(encoding="utf-8") + "modified: 2099-01-01\n", encoding="utf-8")
    return d


def _same(a: tuple[list, list], b: tuple[list, list]) -> bool:  # type: ignore[type-arg]
    return [repr(r) for r in a[0]] == [repr(r) for r in b[0]] and a[1] == b[1]


def test_cached_load_is_the_uncached_load(rules_dir: Path, tmp_path: Path) -> None:
    """Rules (in order), identity decisions and diagnostics are the same cold, warm and uncached."""
    plain = load_rules([rules_dir])
    cold = load_rules([rules_dir], first := LoadedCache(tmp_path / "c"))
    warm = load_rules([rules_dir], second := LoadedCache(tmp_path / "c"))
    assert first.hits == 0 and second.hits == len(rule_files([rules_dir])) - 1  # the identical copy: not read
    assert _same(cold, plain) and _same(warm, plain)
    assert any("identical copy" in d.message for d in plain[1])


def test_one_changed_file_is_parsed_alone(rules_dir: Path, tmp_path: Path) -> None:
    load_rules([rules_dir], LoadedCache(tmp_path / "c"))
    f = next(rules_dir.rglob("*.xml"))
    f.write_text(f.read_text().replace("fsockopen", "fsockopen_x"))
    again = load_rules([rules_dir], cache := LoadedCache(tmp_path / "c"))
    assert cache.hits == len(rule_files([rules_dir])) - 2  # all but the identical copy and the changed file
    assert _same(again, load_rules([rules_dir]))
    assert "fsockopen_x" in repr(again[0])


@pytest.mark.parametrize("damage", ["flip", "others_can_write"])
def test_bad_entry_is_parsed_again(rules_dir: Path, tmp_path: Path, damage: str) -> None:
    """An entry that fails its sha256, or that another user could have written, is never loaded."""
    load_rules([rules_dir], LoadedCache(tmp_path / "c"))
    entries = sorted((tmp_path / "c" / "files").glob("*.rules"))
    for e in entries:
        if damage == "flip":
            data = bytearray(e.read_bytes())
            data[-1] ^= 0xFF
            e.write_bytes(bytes(data))
        else:
            e.chmod(0o666)
    again = load_rules([rules_dir], cache := LoadedCache(tmp_path / "c"))
    assert cache.hits == 0 and _same(again, load_rules([rules_dir]))


def test_the_path_is_part_of_the_key(rules_dir: Path, tmp_path: Path) -> None:
    """Rules carry their file's path (diagnostics, alerts): the same bytes elsewhere are parsed anew."""
    load_rules([rules_dir], LoadedCache(tmp_path / "c"))
    moved = tmp_path / "moved"
    shutil.copytree(rules_dir, moved)
    again = load_rules([moved], cache := LoadedCache(tmp_path / "c"))
    assert cache.hits == 0 and str(moved) in repr(again[0][0].location)
