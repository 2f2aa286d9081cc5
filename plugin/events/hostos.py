"""`host.os.type` for events whose input names no OS (plain command lines), so that rules scoped to an
OS (Sigma `logsource: product: linux`, Elastic `host.os.type == "linux"`) run on them."""

from __future__ import annotations

import re

__all__ = ["HOST_OS", "looks_windows", "os_of_command"]

HOST_OS = ("auto", "linux", "windows", "macos", "none")

# What only a Windows command line holds: a drive-letter path, a UNC path (`\\server\share`), a
# Windows executable or script, cmd.exe's `/c`, PowerShell. Anything else is read as Linux: the
# filter's home is a Linux log pipeline, and a POSIX command line has no marker of its own. Each
# regex runs only where a substring test lets it (one regex over all took 6 us a line).
_PATH = re.compile(r"""(?:^|[\s"'=(])(?:[a-z]:\\|\\\\[^\\\s])""")  # C:\... or \\server
_EXT = re.compile(r"\.(?:exe|ps1|bat|cmd|vbs|msi)\b")
_CMD = re.compile(r"""\bcmd(?:\.exe)?["']?\s+/[ck]\b""")
_PS = re.compile(r"\b(?:powershell|pwsh)\b")


def looks_windows(command_line: str) -> bool:
    """Does the command line hold a Windows marker?"""
    low = command_line.lower()
    return bool(((":\\" in low or "\\\\" in low) and _PATH.search(low))
                or ("." in low and _EXT.search(low))
                or ("cmd" in low and _CMD.search(low))
                or (("powershell" in low or "pwsh" in low) and _PS.search(low)))


def os_of_command(host_os: str, command_line: str) -> str | None:
    """The host.os.type to give a command line under `--host-os host_os` (None: none)."""
    if host_os == "auto":
        return "windows" if looks_windows(command_line) else "linux"
    return None if host_os == "none" else host_os
