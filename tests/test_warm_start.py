"""Instant start: the CLI imports no rule-format library, and a warm start reads the rule model from
the cache with the same output as a cold one (issue 22 item 3)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PATTERNS
from corpus.shells import seed_shells

CLI = str(Path(sys.executable).parent / "shellsieve")
FORMAT_LIBS = ("eql", "sigma", "lark", "yaml")
# The only lines of `check` that differ warm and cold: the compile time and the cache status.
_VOLATILE = re.compile(r"compiled in [\d.]+ s \(cache: \w+\)")


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped rules plus a newer copy of one Sigma rule, so an identity decision (SS305) is made."""
    d = tmp_path_factory.mktemp("warm") / "rules"
    shutil.copytree(PATTERNS, d, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    first = sorted(d.rglob("*.yml"))[0]
    newer = first.read_text(encoding="utf-8") + "modified: 2099-01-01\n"
    first.with_name("zz-newer-" + first.name).write_text(newer, encoding="utf-8")
    return d


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, check=False, timeout=120)


def test_cli_imports_no_rule_format_library() -> None:
    """Importing the CLI pulls in none of eql, pySigma, lark, PyYAML: they load when a rule needs them."""
    code = f"import shellsieve.cli, sys; print(sorted(m for m in {FORMAT_LIBS!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_warm_run_imports_no_rule_format_library(rules_dir: Path, tmp_path: Path) -> None:
    """With the cache filled, `run` parses no rule file: no rule-format library is imported."""
    cache = tmp_path / "cache"
    assert _cli("check", "--quiet", "--rules", str(rules_dir), "--cache-dir", str(cache)).returncode == 0
    code = ("import sys; from shellsieve.cli import main; "
            f"sys.argv = ['shellsieve', 'run', '--rules', {str(rules_dir)!r}, '--cache-dir', {str(cache)!r}]; "
            "rc = main(); "
            f"print(rc, sorted(m for m in {FORMAT_LIBS!r} if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], input="", capture_output=True, text=True, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "0 []", proc.stderr[-2000:]


def test_check_same_warm_and_cold(rules_dir: Path, tmp_path: Path) -> None:
    """Diagnostics, identity decisions and coverage printed by `check` are the same read from the cache."""
    cache = tmp_path / "cache"
    cold = _cli("check", "--format", "text", "--rules", str(rules_dir), "--cache-dir", str(cache))
    warm = _cli("check", "--format", "text", "--rules", str(rules_dir), "--cache-dir", str(cache))
    assert "(cache: cold)" in cold.stdout and "(cache: warm)" in warm.stdout
    assert "SS305" in cold.stdout
    assert (warm.returncode, _VOLATILE.sub("", warm.stdout)) == (cold.returncode, _VOLATILE.sub("", cold.stdout))


def test_run_same_warm_and_cold(rules_dir: Path, tmp_path: Path) -> None:
    """The seed reverse shells give the same output lines cold and warm."""
    events = "".join(json.dumps(ev) + "\n" for shell in seed_shells() for ev in shell.events)
    cache = tmp_path / "cache"
    cold = _cli("run", "--rules", str(rules_dir), "--cache-dir", str(cache), stdin=events)
    warm = _cli("run", "--rules", str(rules_dir), "--cache-dir", str(cache), stdin=events)
    assert cold.returncode == warm.returncode == 0, cold.stderr[-2000:]
    assert '"cache":"cold"' in cold.stderr and '"cache":"warm"' in warm.stderr
    assert "shellsieve" in cold.stdout and warm.stdout == cold.stdout


def test_one_changed_file_same_as_uncached(rules_dir: Path, tmp_path: Path) -> None:
    """After one rule file changed, `check` reads the others' rules from the per-file cache and prints
    what an uncached `check` prints (diagnostics, identity decisions, coverage)."""
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir, rules)
    cache = tmp_path / "cache"
    assert _cli("check", "--quiet", "--rules", str(rules), "--cache-dir", str(cache)).returncode == 0
    changed = next(rules.rglob("*.toml"))
    changed.write_text(changed.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    again = _cli("check", "--format", "text", "--rules", str(rules), "--cache-dir", str(cache))
    plain = _cli("check", "--format", "text", "--rules", str(rules), "--no-cache")
    assert len(list((cache / "files").glob("*.rules"))) == len(list(rules.rglob("*.*"))) + 1  # and the edited one
    assert (again.returncode, _VOLATILE.sub("", again.stdout)) == (plain.returncode, _VOLATILE.sub("", plain.stdout))
