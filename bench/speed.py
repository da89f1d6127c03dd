"""How fast this machine's cores are right now: a fixed pure-Python workload, timed in CPU time.

This virtual machine's speed moves by up to 2x within an hour and 3x between days (other guests share its
physical cores), and every figure of the benchmark moves with it. The probe runs before and after a run, on an
otherwise idle system, so each run's figures can be read against the speed of the machine that produced them.
Lower is faster. `python -m bench.speed` prints one reading.
"""

from __future__ import annotations

import time

ROUNDS = 7
SIZE = 200_000


def _work(n: int) -> int:
    # Dict stores, int-to-str conversions and a loop: the kind of interpreter work the engine's own Python does.
    seen: dict[int, int] = {}
    total = 0
    for i in range(n):
        seen[i & 1023] = i
        total += len(str(i))
    return total


def speed_probe_ms(rounds: int = ROUNDS, size: int = SIZE) -> float:
    """CPU milliseconds the workload takes, best of `rounds` (the least disturbed one)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        _work(size)
        best = min(best, time.process_time() - start)
    return round(best * 1000, 2)


if __name__ == "__main__":
    print(f"{speed_probe_ms()} ms")
