"""CPU and memory of the processes under test, read from /proc (Linux), and the load generator's own CPU."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (by walking /proc's parent links)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of one process, in KiB."""
    out = {"VmRSS": 0, "VmHWM": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in out:
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used since boot (all cores, idle and iowait excluded)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def self_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class CpuMeter:
    """CPU used by each group of processes (and by this process) between `start` and `stop`, as a share of one core.

    `joined` (optional) lists the groups again at `stop`: a process that started meanwhile (a PostgreSQL backend of
    a connection opened during the window, a worker's child) counts with all its CPU, since all of it is in the
    window. A process that ended meanwhile counts 0 (its CPU is no longer readable), never less.
    """

    groups: Mapping[str, list[int]]
    joined: Callable[[], Mapping[str, list[int]]] | None = None
    _t0: float = 0.0
    _self0: float = 0.0
    _cpu0: dict[int, float] = field(default_factory=dict)
    _machine0: float = 0.0

    def start(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._self0 = self_cpu_seconds()
        self._machine0 = machine_busy_seconds()
        self._cpu0 = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        return self

    def stop(self) -> dict[str, float]:
        """Cores used (1.0 = one core busy all the time) per group, plus `loadgen` and `total`."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        now = self.joined() if self.joined is not None else {}
        out: dict[str, float] = {}
        for name, pids in self.groups.items():
            members = set(pids) | set(now.get(name, []))
            if not members:
                continue
            used = 0.0
            for pid in members:
                cpu = cpu_seconds(pid)
                used += max(0.0, cpu - self._cpu0[pid]) if pid in self._cpu0 else cpu
            out[name] = round(used / elapsed, 3)
        # A `loadgen` group holds client processes; this process is part of the load generator too.
        out["loadgen"] = round(out.get("loadgen", 0.0) + (self_cpu_seconds() - self._self0) / elapsed, 3)
        out["total"] = round(sum(out.values()), 3)
        # Everything the machine ran; beyond `total` it is other people's work sharing the cores.
        out["machine"] = round((machine_busy_seconds() - self._machine0) / elapsed, 3)
        return out
