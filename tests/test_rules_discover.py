"""Rule discovery: files read bounded, and every file that yields no rule says why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shellsieve.cli import main
from shellsieve.rules.discover import load_rules

_WAZUH = '<group name="g,"><rule id="9" level="5"><match>nc -e</match></rule></group>\n'


class TestNothingLoaded:
    @pytest.mark.parametrize(("name", "text"), [("e.xml", ""), ("e.yml", ""), ("c.yml", "# only a comment\n"),
                                                 ("g.xml", '<group name="g,"></group>\n')])
    def test_file_without_rules_is_an_error(self, tmp_path: Path, name: str, text: str) -> None:
        """An empty rule file, or one with no rule in it, is an error diagnostic with its path and line 1."""
        (tmp_path / name).write_text(text)
        rules, diags = load_rules([tmp_path / name])
        assert rules == []
        (d,) = diags
        assert d.severity == "error" and d.location.path == str(tmp_path / name) and d.location.line == 1

    def test_check_strict_fails_on_a_file_that_yields_nothing(self, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
        """`check --strict` exits 1 when one of the rule files loads no rule; 0 without --strict."""
        (tmp_path / "ok.xml").write_text(_WAZUH)
        (tmp_path / "none.xml").write_text("<!-- nothing yet -->\n")
        assert main(["check", "--no-cache", "--quiet", "--rules", str(tmp_path)]) == 0
        assert main(["check", "--format", "text", "--no-cache", "--quiet", "--strict", "--rules", str(tmp_path)]) == 1
        assert f"{tmp_path / 'none.xml'}:1:0: error[SS102]" in capsys.readouterr().out

    def test_declaration_file_loads_under_strict(self, tmp_path: Path) -> None:
        """A Wazuh file with an XML declaration passes `check --strict` with its rule loaded."""
        (tmp_path / "d.xml").write_text('<?xml version="1.0"?>\n' + _WAZUH)
        assert main(["check", "--no-cache", "--quiet", "--strict", "--rules", str(tmp_path / "d.xml")]) == 0


class TestBoundedRead:
    def test_device_is_refused_unread(self, tmp_path: Path) -> None:
        """A rule path that is a device (a link to /dev/zero named like a rule file) is refused, not read."""
        (tmp_path / "z.yml").symlink_to("/dev/zero")
        rules, diags = load_rules([tmp_path / "z.yml"])
        assert rules == [] and "not a regular file" in diags[0].message
        assert diags[0].location.path == str(tmp_path / "z.yml")

    def test_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        """A FIFO named like a rule file is refused at once (opening it blocking would wait for a writer)."""
        os.mkfifo(tmp_path / "f.xml")
        rules, diags = load_rules([tmp_path / "f.xml"])
        assert rules == [] and "not a regular file" in diags[0].message

    def test_file_over_the_cap_is_refused(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file over the size cap is an error naming it and the cap; one at the cap loads."""
        from shellsieve.rules import source

        monkeypatch.setattr(source, "MAX_RULE_FILE_BYTES", len(_WAZUH))
        (tmp_path / "a.xml").write_text(_WAZUH)
        (tmp_path / "b.xml").write_text(_WAZUH.replace('"9"', '"10"') + " ")
        rules, diags = load_rules([tmp_path])
        assert [r.id for r in rules] == ["9"]
        (d,) = diags
        assert d.location.path == str(tmp_path / "b.xml") and f"{len(_WAZUH)}-byte cap" in d.message

    def test_sparse_huge_file_is_refused_quickly(self, tmp_path: Path) -> None:
        """A 1 TiB sparse file is refused on its size, never read (it used to grow to a MemoryError)."""
        f = tmp_path / "huge.toml"
        with open(f, "wb") as fh:
            fh.truncate(1 << 40)
        rules, diags = load_rules([f])
        assert rules == [] and "over the" in diags[0].message

    def test_cap_is_sixteen_mib(self) -> None:
        """The documented cap."""
        from shellsieve.rules import source

        assert source.MAX_RULE_FILE_BYTES == 16 << 20
