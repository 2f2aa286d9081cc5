"""The README as a newcomer reads it (issue 27, item 6): its quick start gets an alert out of
Vector-shaped input, its options table is the parser's, its test command is the one CI runs, and
(slow) its first command installs and runs in a fresh venv."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _section(title: str) -> str:
    """The README text under the `## <title>` heading, up to the next `## ` heading."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def _blocks(text: str, lang: str) -> list[str]:
    """The fenced code blocks of language `lang` in `text`, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def _gen_options() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_options", ROOT / "docs" / "gen_options.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    """This interpreter's bin first on PATH: `shellsieve` and `python3` are the installed ones."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


class TestQuickStart:
    def test_commands_show_an_alert_from_vector_input(self, tmp_path: Path) -> None:
        """Every `sh` block of the quick start, run as written in a copy of examples/, exits 0 and
        prints the alerts of the Vector-shaped events."""
        shutil.copytree(ROOT / "examples", tmp_path / "examples")
        section = _section("Quick start")
        blocks = _blocks(section, "sh")
        assert len(blocks) >= 2
        printed = ""
        for block in blocks:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=_env(),
                                  capture_output=True, text=True, check=False, timeout=120)
            assert done.returncode == 0, f"{block}\n{done.stdout}\n{done.stderr}"
            printed += done.stdout
        assert '"message"' in printed  # the Vector envelope shown by `head`
        (expected,) = _blocks(section, "text")
        for line in expected.splitlines():
            assert line in printed, line

    def test_input_is_vector_shaped(self) -> None:
        """examples/vector.ndjson is what Vector's file source writes: message, host, file,
        source_type and timestamp, nothing parsed."""
        for line in (ROOT / "examples" / "vector.ndjson").read_text().splitlines():
            event = json.loads(line)
            assert set(event) == {"message", "host", "file", "source_type", "timestamp"}
            assert event["source_type"] == "file"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces -> `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


class TestLinks:
    def test_every_relative_link_resolves(self) -> None:
        """Each link of the README to a file of the repository names one that exists and, with an
        `#anchor`, a heading of it."""
        for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            assert (ROOT / path).exists(), target
            if anchor:
                headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, target


class TestOptionsTable:
    def test_matches_the_parser(self) -> None:
        """README.md's options table is what docs/gen_options.py makes of the parser now."""
        gen = _gen_options()
        now = README.read_text()
        assert gen.rewrite(now, gen.parser()) == now, "stale: run python docs/gen_options.py"

    def test_every_option_has_a_row(self) -> None:
        """Each option of each command appears in the table under that command."""
        gen = _gen_options()
        top = gen.parser()
        table = README.read_text().split(gen.BEGIN)[1].split(gen.END)[0]
        for name, sub in top.commands.items():
            for action in sub.options:
                if "-h" in action.option_strings:
                    continue
                for flag in action.option_strings:
                    row = rf"^\| `[^`]*{re.escape(flag)}\b[^|]*\| [^|]*\b{name}\b"
                    assert re.search(row, table, re.MULTILINE), (name, flag)


class TestSetUpCommands:
    def test_ci_runs_the_readme_test_command(self) -> None:
        """Command 2's test invocation is the one .ci/run runs, with the extras it installs."""
        (setup,) = _blocks(README.read_text().split("## ")[0], "sh")
        install, test = setup.strip().splitlines()[-1].split("&& pip install ")[1].split(" && ")
        ci = (ROOT / ".ci" / "run").read_text()
        assert test in ci.splitlines()
        assert install.strip('"').removesuffix("]") in ci

    @pytest.mark.slow
    def test_command_one_in_a_fresh_venv(self, tmp_path: Path) -> None:
        """Command 1 as written, in a fresh copy of the project with no venv: the install works and
        the shipped rules alert on the sample events."""
        src = tmp_path / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info",
                                                                  "__pycache__", ".pytest_cache", "site"))
        (setup,) = _blocks(README.read_text().split("## ")[0], "sh")
        command = setup.strip().splitlines()[1]
        assert command.startswith("python3 -m venv .venv") and "pip install ." in command
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["SHELLSIEVE_CACHE_DIR"] = str(tmp_path / "cache")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=src, env=env,
                              capture_output=True, text=True, check=False, timeout=1200)
        assert done.returncode == 0, done.stderr[-4000:]
        assert '"kind":"alert"' in done.stdout
