"""Load patterns: closed loop (C clients, each places an order, watches it to `confirmed`, places the next) and
open loop (orders arrive at a fixed or Poisson rate whether or not earlier ones are done). Every order is watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

from bench.drivers import FINAL, Driver
from bench.procstat import CpuMeter
from bench.stats import Recorder

PidGroups = Callable[[], dict[str, list[int]]]


async def one_order(driver: Driver, n: int, rec: Recorder) -> None:
    sent_at = time.monotonic()
    rec.on_sent(sent_at)
    try:
        order_id = await driver.execute(n)
        executed_at = time.monotonic()
        watch_wall = time.time()
        status = ""
        async for status, _seq, commit in driver.watch(order_id):
            rec.on_event(commit, watch_wall, sent_at)
            if status in FINAL:
                break
        if status not in FINAL:
            raise RuntimeError(f"watch of {order_id} ended at {status or 'nothing'}")
        rec.on_done(sent_at, executed_at, time.monotonic(), status == "confirmed")
    except asyncio.CancelledError:
        rec.unfinished += 1
        raise
    except Exception as exc:
        rec.on_error(exc)


async def _measure_cpu(pids: PidGroups, start_at: float, duration: float) -> dict[str, float]:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    meter = CpuMeter(pids(), pids).start()
    await asyncio.sleep(duration)
    return meter.stop()


async def _finish(tasks: set[asyncio.Task[None]], drain_s: float, rec: Recorder) -> None:
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=drain_s)
        rec.closing = True
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def closed_loop(
    driver: Driver, pids: PidGroups, *, concurrency: int, warmup: float, duration: float, drain: float
) -> dict[str, Any]:
    t0 = time.monotonic()
    rec = Recorder(window_start=t0 + warmup, window_end=t0 + warmup + duration)
    stop_at = rec.window_end

    async def client(i: int) -> None:
        n = i
        while time.monotonic() < stop_at:
            await one_order(driver, n, rec)
            n += concurrency

    cpu_task = asyncio.create_task(_measure_cpu(pids, rec.window_start, duration))
    tasks = {asyncio.create_task(client(i)) for i in range(concurrency)}
    await _finish(tasks, warmup + duration + drain, rec)
    out = {"mode": "closed", "concurrency": concurrency, **rec.result(), "cpu_cores": await cpu_task}
    return out


async def open_loop(
    driver: Driver,
    pids: PidGroups,
    *,
    rate: float,
    warmup: float,
    duration: float,
    drain: float,
    poisson: bool = True,
    max_in_flight: int = 20_000,
    seed: int = 1,
) -> dict[str, Any]:
    """Arrivals at `rate` per second (exponential gaps when `poisson`); beyond `max_in_flight` arrivals are shed
    (counted), so an overloaded system cannot make the generator grow without bound."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    rec = Recorder(window_start=t0 + warmup, window_end=t0 + warmup + duration)
    cpu_task = asyncio.create_task(_measure_cpu(pids, rec.window_start, duration))
    tasks: set[asyncio.Task[None]] = set()
    n, next_at = 0, t0
    while next_at < rec.window_end:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= max_in_flight:
            rec.shed += 1
        else:
            task = asyncio.create_task(one_order(driver, n, rec))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        n += 1
        next_at += rng.expovariate(rate) if poisson else 1.0 / rate
    await _finish(set(tasks), drain, rec)
    out = {"mode": "open", "rate": rate, "arrivals": "poisson" if poisson else "fixed", **rec.result()}
    out["cpu_cores"] = await cpu_task
    return out
