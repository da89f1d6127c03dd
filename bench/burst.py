"""Bursts (issue 14, part 3): `size` orders placed at the same instant, as many users pressing "swap" together, and
how long each waits for its answer (the `orderId`, which it needs before it can watch). Each order is then watched to
its final event (one stream or WebSocket per order, opened after the answer, as the seed's users do), and the system
is let go idle before the next round, so every round meets the same empty system."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.drivers import FINAL, Driver
from bench.load import PidGroups
from bench.procstat import CpuMeter
from bench.stats import summary_ms


async def _one(driver: Driver, n: int, start: asyncio.Event, answers: list[float], errors: list[str]) -> None:
    await start.wait()
    sent_at = time.monotonic()
    try:
        order_id = await driver.execute(n)
        answers.append(time.monotonic() - sent_at)
        status = ""
        async for status, _seq, _commit in driver.watch(order_id):
            if status in FINAL:
                break
        if status not in FINAL:
            raise RuntimeError(f"watch of {order_id} ended at {status or 'nothing'}")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}"[:300])


async def _round(driver: Driver, size: int, first: int, errors: list[str]) -> tuple[list[float], float]:
    """One burst: every task waits on one event, so the `size` calls leave together; returns the answer times and
    how long until the last order's final event."""
    start = asyncio.Event()
    answers: list[float] = []
    tasks = [asyncio.create_task(_one(driver, first + i, start, answers, errors)) for i in range(size)]
    await asyncio.sleep(0)  # every task is waiting on `start`
    t0 = time.monotonic()
    start.set()
    await asyncio.gather(*tasks)
    return answers, time.monotonic() - t0


async def burst(
    driver: Driver, pids: PidGroups, *, size: int, rounds: int, idle_s: float, warmup_rounds: int = 1
) -> dict[str, Any]:
    """`warmup_rounds` unmeasured bursts (connections opened, caches filled), then `rounds` measured ones."""
    errors: list[str] = []
    n = 0
    for _ in range(warmup_rounds):
        await _round(driver, size, n, errors)
        n += size
        await asyncio.sleep(idle_s)
    errors.clear()
    answers: list[float] = []
    per_round: list[dict[str, Any]] = []
    cpu: dict[str, float] = {}
    busy_s = 0.0
    for _ in range(rounds):
        meter = CpuMeter(pids(), pids).start()
        t0 = time.monotonic()
        got, done_s = await _round(driver, size, n, errors)
        busy = time.monotonic() - t0
        used = meter.stop()  # cores over the round
        for k, v in used.items():
            cpu[k] = cpu.get(k, 0.0) + v * busy
        busy_s += busy
        n += size
        answers += got
        per_round.append({**summary_ms(got), "all_final_s": round(done_s, 2)})
        await asyncio.sleep(idle_s)
    return {
        "size": size,
        "rounds": rounds,
        "answer_ms": summary_ms(answers),
        "per_round": per_round,
        "errors": len(errors),
        "error_samples": errors[:3],
        # Average cores while a burst was in flight (from the calls until the last order's final event).
        "cpu_cores": {k: round(v / busy_s, 2) for k, v in cpu.items()} if busy_s else {},
    }
