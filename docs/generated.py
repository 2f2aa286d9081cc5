"""What the page generators (docs/gen_options.py, docs/gen_coverage.py, bench/plots.py) share: write a
generated file, or with --check say that it is stale."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["write_or_check"]


def write_or_check(path: Path, text: str, check: bool, remedy: str) -> int:
    """Write `text` to `path` and return 0; with `check`, write nothing and return 1 (printing
    `remedy`, the command that rewrites it) when the file differs from `text`."""
    if not check:
        path.write_text(text)
        return 0
    if path.exists() and path.read_text() == text:
        return 0
    print(f"{path} is stale: run {remedy}", file=sys.stderr)
    return 1
