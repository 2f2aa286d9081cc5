"""`host.os.type` for events whose input names no OS (plain command lines), so that rules scoped to an
OS (Sigma `logsource: product: linux`, Elastic `host.os.type == "linux"`) run on them."""

from __future__ import annotations

import re

__all__ = ["HOST_OS", "os_of_command"]

HOST_OS = ("auto", "linux", "windows", "macos", "none")

# What only a Windows command line holds: a drive-letter path, a UNC path (`\\server\share`), a
# Windows executable or script, cmd.exe's `/c`, PowerShell. Anything else is read as Linux: the
# filter's home is a Linux log pipeline, and a POSIX command line has no marker of its own.
_WINDOWS = re.compile(
    r"""(?:^|[\s"'=(])[a-z]:\\           # C:\...
      | (?:^|[\s"'=])\\\\[^\\\s]           # \\server\share
      | \.(?:exe|ps1|bat|cmd|vbs|msi)\b    # a Windows program or script
      | \bcmd(?:\.exe)?["']?\s+/[ck]\b     # cmd /c
      | \b(?:powershell|pwsh)\b""",
    re.IGNORECASE | re.VERBOSE)


def os_of_command(host_os: str, command_line: str) -> str | None:
    """The host.os.type to give a command line under `--host-os host_os` (None: none)."""
    if host_os == "auto":
        return "windows" if _WINDOWS.search(command_line) else "linux"
    return None if host_os == "none" else host_os
