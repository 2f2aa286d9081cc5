"""`shellsieve --version`: the versions a bug report needs, without loading or compiling any rule."""

from __future__ import annotations

import platform
import re
from importlib import metadata

__all__ = ["versions", "render_versions"]


def _engine_version() -> str:
    """The Hyperscan/Vectorscan library version: the module exposes it only in a database's info,
    so one single-pattern database is compiled (well under a millisecond)."""
    import hyperscan

    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[b"a"])
    # bytes at run time, though hyperscan's stub says str
    raw: bytes | str = db.info()
    info = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    found = re.search(r"Version:\s*(\S+)", info)
    return found.group(1) if found else info


def versions() -> dict[str, str]:
    """Name -> version, in the order `--version` prints them."""
    return {
        "shellsieve": metadata.version("shellsieve"),
        "hyperscan-library": _engine_version(),
        "hyperscan-python": metadata.version("hyperscan"),
        "python": platform.python_version(),
    }


def render_versions() -> str:
    """One `name version` line each; the first is `shellsieve X.Y.Z`, as tools expect."""
    return "\n".join(f"{name} {version}" for name, version in versions().items())
