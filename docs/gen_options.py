"""Write README.md's options table from the CLI parser (shellsieve.cli.parser).

    python docs/gen_options.py            # rewrite the table between the markers in README.md
    python docs/gen_options.py --check    # exit 1 if README.md's table differs from the parser's

One row per option and meaning: an option several commands share with the same help is one row
naming them all. tests/test_readme.py fails when README.md's table is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shellsieve.cli import Parser, parser

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/generated.py, however this file is loaded
from generated import write_or_check  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- options:begin (docs/gen_options.py writes this table) -->"
END = "<!-- options:end -->"


def _cell(text: str) -> str:
    """Markdown table cell text: backslashes and pipes escaped, one line."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _flag(action: argparse.Action) -> str:
    """`--name VALUE` as the usage line writes it; choices as `{a,b}`."""
    flags = ", ".join(action.option_strings)
    if not flags:  # a positional argument
        return f"`{action.metavar or action.dest.upper()}`"
    if action.nargs == 0:
        return f"`{flags}`"
    if action.choices is not None and action.metavar is None:
        return f"`{flags} {{{','.join(str(c) for c in action.choices)}}}`"
    value = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return f"`{flags} {value}`"


def _help(action: argparse.Action) -> str:
    """The help text with %(default)s and the like filled in, as `--help` prints it."""
    text = action.help or ""
    params = {**vars(action), "prog": "shellsieve"}
    if action.choices is not None:
        params["choices"] = ", ".join(str(c) for c in action.choices)
    return text % params if "%" in text else text


def rows(top: Parser) -> list[tuple[str, list[str], str]]:
    """(flag, commands, help) for every option of every command, in the parser's order."""
    out: dict[tuple[str, str], list[str]] = {}
    for command, sub in [("shellsieve", top), *top.commands.items()]:
        for action in sub.options:
            if "-h" in action.option_strings:
                continue
            out.setdefault((_flag(action), _help(action)), []).append(command)
    return [(flag, commands, help_) for (flag, help_), commands in out.items()]


def table(top: Parser) -> str:
    lines = ["| option | commands | what it does |", "|---|---|---|"]
    lines += [f"| {flag} | {', '.join(commands)} | {_cell(help_)} |" for flag, commands, help_ in rows(top)]
    return "\n".join(lines)


def rewrite(readme: str, top: Parser) -> str:
    """`readme` with the text between the markers replaced by the table."""
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{table(top)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md's table is stale; write nothing")
    args = ap.parse_args(argv)
    return write_or_check(README, rewrite(README.read_text(), parser()), args.check, "python docs/gen_options.py")


if __name__ == "__main__":
    sys.exit(main())
