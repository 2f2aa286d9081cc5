"""Command lines <-> argument vectors, the way each OS itself splits them."""

from __future__ import annotations

import re
import shlex

__all__ = ["split_posix", "split_windows", "shell_join"]

_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII)  # shlex.quote's set of characters that need no quotes
_DOUBLE_UNSAFE = re.compile(r'["$`\\!]')


# One word as shlex.split reads it (posix, no comments): single-quoted text, double-quoted text
# (where a backslash escapes only `"` and `\`), a backslash and the character it escapes, or plain
# characters. shlex itself grows each word a character at a time (`token + c`): quadratic, 24 s on
# a 1 MiB word; these regexes are linear and give the same words (property-tested against shlex).
_WORD = re.compile(r"""(?:'[^']*'|"(?:[^"\\]|\\[\s\S])*"|\\[\s\S]|[^ \t\r\n'"\\]+)+""")
_PIECE = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\[\s\S])*)"|\\([\s\S])|([^ \t\r\n'"\\]+)""")
_IN_DOUBLE = re.compile(r"""\\([\\"])""")
_BLANKS = " \t\r\n"
_QUOTING = re.compile(r"""['"\\]""")
_PLAIN = re.compile(r"[^ \t\r\n]+")


def _unquote(word: str) -> str:
    parts = []
    for single, double, escaped, plain in _PIECE.findall(word):
        # findall gives "" for the groups that did not take part: exactly one of them did
        parts.append(single or (_IN_DOUBLE.sub(r"\1", double) if double else escaped or plain))
    return "".join(parts)


def split_posix(command_line: str) -> list[str]:
    """Split like a POSIX shell (quotes, backslashes), as `shlex.split`; unbalanced quotes or a
    trailing backslash fall back to whitespace."""
    if not _QUOTING.search(command_line):
        return _PLAIN.findall(command_line)
    if "\\" not in command_line and not ("'" in command_line and '"' in command_line):
        # One kind of quote and no backslash: quotes only delimit (an odd count leaves one open).
        quote = "'" if "'" in command_line else '"'
        if command_line.count(quote) % 2:
            return command_line.split()
        return [w.replace(quote, "") for w in _WORD.findall(command_line)]
    # What no word takes must be blanks: else an unclosed quote or a lone trailing backslash.
    # (C-speed passes; a fullmatch of words-and-blanks would backtrack on such a line.)
    if _WORD.sub("", command_line).strip(_BLANKS):
        return command_line.split()
    return [_unquote(w) if _QUOTING.search(w) else w for w in _WORD.findall(command_line)]


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
