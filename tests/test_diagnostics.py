"""Diagnostics and `check` output: rule text is printed with its control characters escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from shellsieve.cli import main
from shellsieve.diagnostics import Code, Diagnostic, Location, printable

ESC_TITLE = "evil \x1b]0;pwned\x07 \u202e name \x9b2J"
_SIGMA = """title: "evil \\x1b]0;pwned\\x07 \\u202e name \\x9b2J"
id: 9f1c2a3b-4d5e-4f60-8a7b-1c2d3e4f5a6b
logsource:
  product: "li\\x1bnux"
  category: process_creation
detection:
  s:
    CommandLine|contains: "nc -e"
  condition: s
"""


class TestPrintable:
    @pytest.mark.parametrize(("raw", "shown"), [
        ("\x1b[31m", "\\x1b[31m"), ("a\nb\rc", "a\\x0ab\\x0dc"), ("\x9b", "\\x9b"), ("\x7f", "\\x7f"),
        ("\u202e", "\\u202e"), ("\u2066", "\\u2066"), ("\ud800", "\\ud800"),
        ("/bin/sh -i é", "/bin/sh -i é"), ("(?i)\\d+", "(?i)\\d+"),
    ])
    def test_controls_escaped_text_kept(self, raw: str, shown: str) -> None:
        """Control characters become visible escapes; printable text (non-ASCII letters too) is unchanged."""
        assert printable(raw) == shown

    def test_render_is_one_line_without_controls(self) -> None:
        """A diagnostic quoting hostile rule text renders as one line with no control byte."""
        d = Diagnostic(Code.PARSE, "error", Location("/r/a\x1b.yml", 3), "id\x1b[2J", "x\ny", "msg \x1b]8;;u\x07")
        text = d.render()
        assert "\n" not in text and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)
        assert "id\\x1b[2J" in text and "x\\x0ay" in text and "/r/a\\x1b.yml:3:0" in text


class TestCheckOutput:
    def test_rule_list_and_coverage_escape_controls(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`check` lists a rule whose name holds ESC/OSC/C1/bidi characters escaped, and so its coverage group."""
        (tmp_path / "s.yml").write_text(_SIGMA)
        assert main(["check", "--format", "text", "--no-cache", "--rules", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert printable(ESC_TITLE) in out and "li\\x1bnux/process_creation" in out
        assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in out)
