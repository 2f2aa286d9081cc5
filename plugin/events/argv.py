"""Command lines <-> argument vectors, the way each OS itself splits them.

Both splitters run in time linear in the line: an attacker writes the command lines (a 1 MiB token
made shlex spend ~24 s), so each argument is cut by one regex in C and only arguments holding a
quote or a backslash are unquoted in Python, piece by piece.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["split_posix", "split_windows", "shell_join"]

_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII)  # shlex.quote's set of characters that need no quotes
_DOUBLE_UNSAFE = re.compile(r'["$`\\!]')

# POSIX (shlex.split, posix=True): blanks are ' \t\r\n'; outside quotes a backslash escapes any
# character; inside '...' nothing is special; inside "..." a backslash escapes only `"` and `\`.
# Possessive quantifiers: an unclosed quote fails in one pass, with no backtracking.
_POSIX_ARG = r"""(?:[^ \t\r\n'"\\]++|\\.|'[^']*+'|"(?:[^"\\]++|\\.)*+")++"""
_POSIX_LINE = re.compile(r"""(?:[^'"\\]++|\\.|'[^']*+'|"(?:[^"\\]++|\\.)*+")*+""", re.S)
_POSIX_ARGS = re.compile(_POSIX_ARG, re.S)
_POSIX_PIECE = re.compile(r"""'([^']*+)'|"((?:[^"\\]++|\\.)*+)"|\\(.)""", re.S)
_POSIX_SPECIAL = re.compile(r"""['"\\]""")
_DOUBLE_ESCAPE = re.compile(r'\\(["\\])')
# What str.split() splits on besides shlex's four blanks (where shlex keeps them inside a word)
_OTHER_SPACE = re.compile("[\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def _posix_piece(m: re.Match[str]) -> str:
    single, double, escaped = m.groups()
    if single is not None:
        return single
    if double is not None:
        return _DOUBLE_ESCAPE.sub(r"\1", double) if "\\" in double else double
    return escaped


def split_posix(command_line: str) -> list[str]:
    """Split like a POSIX shell (quotes, backslashes); unbalanced quotes fall back to whitespace."""
    if _POSIX_SPECIAL.search(command_line) is None:  # no quote, no backslash: blanks split, in C
        return command_line.split() if _OTHER_SPACE.search(command_line) is None \
            else _POSIX_ARGS.findall(command_line)
    if _POSIX_LINE.fullmatch(command_line) is None:
        return command_line.split()  # "No closing quotation" and the like: a truncated or odd line
    args = _POSIX_ARGS.findall(command_line)
    if "\\" not in command_line and "\0" not in command_line:
        # Quotes of one kind and no backslash: unquoting removes every quote (each argument's are
        # balanced, checked above), done for all arguments at once in C.
        for quote, other in (("'", '"'), ('"', "'")):
            if other not in command_line:
                return "\0".join(args).replace(quote, "").split("\0")
    sub = _POSIX_PIECE.sub
    return [sub(_posix_piece, a) if _POSIX_SPECIAL.search(a) else a for a in args]


# Windows: a token is a run of backslashes with the quote after it, a quote, blanks, or other text.
_WINDOWS_TOKEN = re.compile(r'(\\*+)"|\\++|[ \t]++|[^ \t"\\]++')
_WINDOWS_BLANKS = re.compile(r"[^ \t]++")


def split_windows(command_line: str) -> list[str]:
    """Split like CommandLineToArgvW (the rules Winlogbeat's sysmon module also follows):
    2n backslashes + quote -> n backslashes and a quote toggle; 2n+1 -> n and a literal quote;
    `""` inside quotes is a literal quote; backslashes not before a quote are literal."""
    if '"' not in command_line:  # backslashes alone are literal: blanks split, in C
        return _WINDOWS_BLANKS.findall(command_line)
    args: list[str] = []
    cur: list[str] = []
    in_quotes = False
    have_arg = False
    pending_quote = False  # a quote toggled closed: a quote right after it is literal (`""` in quotes)
    for m in _WINDOWS_TOKEN.finditer(command_line):
        tok = m.group()
        run = m.group(1)
        after_close, pending_quote = pending_quote, False
        if run is not None:  # backslashes, then a quote
            count = len(run)
            if count:
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    have_arg = True
                    continue
            have_arg = True
            if after_close and not count:
                cur.append('"')  # `""` inside quotes: a literal quote, still inside
                in_quotes = True
                continue
            in_quotes = not in_quotes
            pending_quote = not in_quotes
        elif tok[0] in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(cur))
                cur, have_arg = [], False
        else:
            cur.append(tok)
            have_arg = True
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
