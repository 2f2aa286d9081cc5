"""Plain command-line logs (one command per line, as seed 000's /var/log/cmdline) -> ECS."""

from __future__ import annotations

from typing import Any

from shellsieve.events.argv import split_posix
from shellsieve.events.ecs import basename

__all__ = ["from_cmdline"]


def from_cmdline(text: str) -> dict[str, Any]:
    """The whole line is the command line; the arguments are split as a POSIX shell would."""
    args = split_posix(text)
    return {
        "event.module": "cmdline",
        "event.category": ["process"],
        "event.type": ["start"],
        "process.command_line": text,
        "process.args": args,
        "process.args_count": len(args),
        "process.name": basename(args[0]) if args else None,
    }
