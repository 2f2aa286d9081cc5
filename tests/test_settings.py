"""Numeric options: refused at start, naming the option, when not finite or out of bounds."""

from __future__ import annotations

import math

import pytest

from shellsieve.cli import parser
from shellsieve.settings import Settings

# option -> (Settings field, bad values, the edge values that are accepted)
OPTIONS = {
    "--audit-timeout": ("audit_timeout_s", ["inf", "-inf", "nan", "0", "-1", "3601", "1e400", "x"], ["0.001", "3600"]),
    "--max-line-bytes": ("max_line_bytes", ["-1", "0", "1.5", "1073741825", "inf", "x"], ["1", "1073741824"]),
    "--stats-interval": ("stats_interval_s", ["-1", "inf", "nan", "86401", "x"], ["0", "86400", "0.5"]),
    "--pid-table-size": ("pid_table_size", ["-1", "-5", "16777217", "1.0", "x"], ["0", "16777216"]),
    "--watch-interval": ("watch_interval_s", ["0.05", "0", "-1", "inf", "nan", "3601", "2h", "x"], ["0.1", "3600"]),
}


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


class TestRunOptions:
    @pytest.mark.parametrize(("option", "bad"), [(o, b) for o, (_, bads, _) in OPTIONS.items() for b in bads])
    def test_out_of_bounds_value_is_refused_naming_the_option(self, option: str, bad: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
        """A value that is not finite, not of the option's type or outside its bounds exits 2 naming the option."""
        err = _error(["run", f"{option}={bad}"], capsys)
        assert f"argument {option}: must be" in err and repr(bad) in err

    @pytest.mark.parametrize(("option", "good"), [(o, g) for o, (_, _, goods) in OPTIONS.items() for g in goods])
    def test_edge_values_are_accepted_and_reach_settings(self, option: str, good: str) -> None:
        """The bounds themselves are accepted, and Settings built from them is valid."""
        name = OPTIONS[option][0]
        args = parser().parse_args(["run", option, good])
        value = getattr(args, {"audit_timeout_s": "audit_timeout", "stats_interval_s": "stats_interval"}.get(
            name, name))
        assert value == float(good)
        Settings(**{name: value})

    def test_defaults_are_valid(self) -> None:
        """Every default passes its own bounds."""
        args = parser().parse_args(["run"])
        Settings(stats_interval_s=args.stats_interval, max_line_bytes=args.max_line_bytes,
                 audit_timeout_s=args.audit_timeout, pid_table_size=args.pid_table_size)


class TestSettings:
    @pytest.mark.parametrize(("name", "value"), [
        ("audit_timeout_s", math.inf), ("audit_timeout_s", 0.0), ("max_line_bytes", -1), ("max_line_bytes", 0),
        ("stats_interval_s", math.nan), ("pid_table_size", -1), ("read_bytes", 0), ("audit_max_open", 0),
        ("max_open_sequences", -1), ("max_line_bytes", 2.5), ("pid_table_size", True),
    ])
    def test_invalid_value_raises(self, name: str, value: float) -> None:
        """Settings built in code refuse the same values the CLI refuses, naming the field."""
        with pytest.raises(ValueError, match=name):
            Settings(**{name: value})
