"""Exception root: loaders collect Diagnostics; only the CLI boundary raises."""

from __future__ import annotations

__all__ = ["ShellsieveError", "RuleError", "UnsupportedError"]


class ShellsieveError(Exception):
    """Root of every error shellsieve raises on purpose."""


class RuleError(ShellsieveError):
    """Rules could not be loaded under --strict, or none could be loaded."""


class UnsupportedError(ShellsieveError):
    """A translator met a construct it cannot run faithfully; the loader turns it into a Diagnostic."""

    def __init__(self, construct: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.construct = construct
        self.message = message
        self.line = line
