"""CPU seconds spent by groups of processes over a stretch of a benchmark, read from /proc (Linux)."""

import os
from collections.abc import Callable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # the fields after the command name, which may hold spaces


def cpu_seconds(pid: int) -> float:
    """User and system time of the process and of its children it has waited for."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / _TICKS


def descendants(pid: int) -> list[int]:
    """The process and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def named(command: str) -> list[int]:
    """Processes whose command name starts with `command` (`postgres`, `redis-server`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith(command):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """`groups` name a way to find their processes; `start()` then `seconds()` gives each group's CPU in between.
    A process that ends in between is counted up to its last reading."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]):
        self.groups = groups
        self._start: dict[int, float] = {}
        self._last: dict[str, dict[int, float]] = {name: {} for name in groups}

    def _read(self) -> None:
        for name, find in self.groups.items():
            for pid in find():
                self._last[name][pid] = cpu_seconds(pid)

    def start(self) -> "CpuMeter":
        self._read()
        self._start = {pid: value for readings in self._last.values() for pid, value in readings.items()}
        return self

    def sample(self) -> None:
        """Read again (call it now and then, so processes that end are not forgotten)."""
        self._read()

    def seconds(self) -> dict[str, float]:
        self._read()
        return {
            name: round(sum(value - self._start.get(pid, 0.0) for pid, value in readings.items()), 2)
            for name, readings in self._last.items()
        }
