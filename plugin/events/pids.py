"""A bounded table of what each pid last executed, so an exec event can name its parent.

auditd and Wazuh audit events carry only `ppid`; web-server rules need the parent's name and
executable. Every SYSCALL record names its process (comm, exe), and an execve names the program
and its arguments: remember them per (host, pid), evicting the least recently used entry.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ProcInfo", "PidTable"]


@dataclass(frozen=True)
class ProcInfo:
    name: str | None
    executable: str | None
    command_line: str | None
    args: tuple[str, ...] | None
    entity_id: str


class PidTable:
    def __init__(self, capacity: int = 65_536) -> None:
        self.capacity = capacity
        self._table: OrderedDict[tuple[str, int], ProcInfo] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._table)

    def get(self, host: str, pid: int | None) -> ProcInfo | None:
        if pid is None:
            return None
        info = self._table.get((host, pid))
        if info is not None:
            self._table.move_to_end((host, pid))
        return info

    def put(self, host: str, pid: int, info: ProcInfo) -> None:
        key = (host, pid)
        self._table[key] = info
        self._table.move_to_end(key)
        if len(self._table) > self.capacity:
            self._table.popitem(last=False)
            self.evicted += 1
