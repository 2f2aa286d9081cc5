"""Command lines <-> argument vectors, the way each OS itself splits them."""

from __future__ import annotations

import re
import shlex

__all__ = ["split_posix", "split_windows", "shell_join"]

_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII)  # shlex.quote's set of characters that need no quotes
_DOUBLE_UNSAFE = re.compile(r'["$`\\!]')


def split_posix(command_line: str) -> list[str]:
    """Split like a POSIX shell (quotes, backslashes); unbalanced quotes fall back to whitespace."""
    try:
        return shlex.split(command_line, posix=True)
    except ValueError:  # "No closing quotation" and the like: a truncated or odd line
        return command_line.split()


def split_windows(command_line: str) -> list[str]:
    """Split like CommandLineToArgvW (the rules Winlogbeat's sysmon module also follows):
    2n backslashes + quote -> n backslashes and a quote toggle; 2n+1 -> n and a literal quote;
    `""` inside quotes is a literal quote; backslashes not before a quote are literal."""
    args: list[str] = []
    cur: list[str] = []
    in_quotes = False
    have_arg = False
    i, n = 0, len(command_line)
    while i < n:
        c = command_line[i]
        if c == "\\":
            j = i
            while j < n and command_line[j] == "\\":
                j += 1
            count = j - i
            if j < n and command_line[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    j += 1
                i = j
            else:
                cur.append("\\" * count)
                i = j
            have_arg = True
            continue
        if c == '"':
            if in_quotes and i + 1 < n and command_line[i + 1] == '"':
                cur.append('"')
                i += 2
                continue
            in_quotes = not in_quotes
            have_arg = True
        elif c in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(cur))
                cur, have_arg = [], False
        else:
            cur.append(c)
            have_arg = True
        i += 1
    if have_arg:
        args.append("".join(cur))
    return args


def shell_join(args: list[str]) -> str:
    """process.command_line from an argv: the arguments as a POSIX shell user types them.

    execve loses the shell's quotes; command-line rules (Wazuh's seed rule wants a quote after `php -r`; written against
    command logs) look for them. An argument that needs quoting gets single quotes, or double quotes
    when it holds a single quote and nothing double quotes would expand, else shlex's form."""
    return " ".join(_quote(a) for a in args)


def _quote(arg: str) -> str:
    if _SAFE.fullmatch(arg):
        return arg
    if "'" not in arg:
        return f"'{arg}'"
    if not _DOUBLE_UNSAFE.search(arg):
        return f'"{arg}"'
    return shlex.quote(arg)
