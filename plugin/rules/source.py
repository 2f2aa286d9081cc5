"""Read one rule file, bounded: a regular file of at most MAX_RULE_FILE_BYTES, read once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_RULE_FILE_BYTES", "RuleFileError", "read_rule_file", "rule_text"]

# The largest rule file read. The biggest file of the public collections (Sigma, Elastic) is under
# 100 KB; a rule file with no bound (`--rules /dev/zero`, a log named *.yml) grew to a MemoryError
# at 3.8 GB before it was refused.
MAX_RULE_FILE_BYTES = 16 << 20


class RuleFileError(Exception):
    """The file is not a regular file, is too large or cannot be read; the message says which."""


def read_rule_file(path: Path) -> bytes:
    """The bytes of `path`, refused unless it is a regular file of at most MAX_RULE_FILE_BYTES.

    Opened non-blocking (a FIFO would block the open until a writer comes) and checked on the
    open descriptor, so a file swapped after a path check is still checked; the read stops one
    byte past the cap, so a file that grows while read is refused, not read whole.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise RuleFileError(f"cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RuleFileError("not a regular file (a device, FIFO or socket is never read as rules)")
        if st.st_size > MAX_RULE_FILE_BYTES:
            raise RuleFileError(f"file of {st.st_size} bytes is over the {MAX_RULE_FILE_BYTES}-byte cap of a rule file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_RULE_FILE_BYTES:
            chunk = os.read(fd, MAX_RULE_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_RULE_FILE_BYTES:
            raise RuleFileError(f"file grew past the {MAX_RULE_FILE_BYTES}-byte cap of a rule file while read")
        return b"".join(chunks)
    except OSError as exc:
        raise RuleFileError(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


def rule_text(data: bytes) -> str:
    """UTF-8 text with universal newlines, as `Path.read_text` gives it (UnicodeDecodeError if not UTF-8)."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
