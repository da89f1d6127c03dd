"""Fan-out: many concurrent WatchOrder streams on one server process, all receiving every event of their orders.

The orders are placed while no worker runs, so they wait at `pending`; every stream is opened and has its
`pending` event (so the server has subscribed it) before the workers start. From then on each of the orders'
events is delivered live to all of its streams at once, and each stream must see seq 1, 2, ... through the final
event with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.drivers import FINAL, Driver, GrpcDriver
from bench.launcher import System
from bench.procstat import CpuMeter, memory_kib
from bench.stats import summary_ms

OPEN_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 90.0


async def fan_out(
    system: System, *, streams: int, orders: int, workers: int, channels: int = 8, driver: Driver | None = None
) -> dict[str, Any]:
    """`driver` places and watches the orders; native gRPC over `channels` connections unless given."""
    assert streams % orders == 0
    driver = driver or GrpcDriver(system.grpc_target, channels=channels)
    server_pid = system.procs["server"].pid
    try:
        ids = await asyncio.gather(*(driver.execute(i) for i in range(orders)))
        rss_before = memory_kib(server_pid)["VmRSS"]
        subscribed = 0
        all_subscribed = asyncio.Event()
        seqs: list[list[int]] = [[] for _ in range(streams)]
        finals: list[str] = ["" for _ in range(streams)]
        delivery: list[float] = []
        errors: list[str] = []

        async def stream(k: int) -> None:
            nonlocal subscribed
            try:
                async for status, seq, commit in driver.watch(ids[k % orders]):
                    if seq == 1:
                        subscribed += 1
                        if subscribed == streams:
                            all_subscribed.set()
                    else:
                        delivery.append(time.time() - commit)
                    seqs[k].append(seq)
                    if status in FINAL:
                        finals[k] = status
                        return
            except Exception as exc:
                if len(errors) < 3:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")

        t_open = time.monotonic()
        tasks = [asyncio.create_task(stream(k)) for k in range(streams)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_subscribed.wait(), OPEN_TIMEOUT_S)
        open_s = time.monotonic() - t_open
        rss_open = memory_kib(server_pid)["VmRSS"]

        system.start_workers(workers)
        meter = CpuMeter(system.pids()).start()
        peak_rss = rss_open
        t_run = time.monotonic()
        done = asyncio.ensure_future(asyncio.wait(tasks, timeout=RUN_TIMEOUT_S))
        while not done.done():
            peak_rss = max(peak_rss, memory_kib(server_pid)["VmRSS"])
            await asyncio.sleep(0.1)
        run_s = time.monotonic() - t_run
        cpu = meter.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await driver.close()

    complete = sum(1 for k in range(streams) if finals[k] and seqs[k] == list(range(1, len(seqs[k]) + 1)))
    expected = sum(s[-1] for s in seqs if s)  # every stream of an order ends at the order's last seq
    return {
        "streams": streams,
        "orders": orders,
        "streams_per_order": streams // orders,
        "workers": workers,
        "subscribed": subscribed,
        "open_s": round(open_s, 2),
        "streams_complete": complete,
        "all_delivered": complete == streams,
        "confirmed_streams": sum(1 for f in finals if f == "confirmed"),
        "events_delivered": sum(len(s) for s in seqs),
        "events_expected": expected,
        "run_s": round(run_s, 2),
        "live_events_per_s": round(len(delivery) / run_s, 1) if run_s else None,
        "delivery_ms": summary_ms(delivery),
        "server_rss_mib": {
            "before_streams": round(rss_before / 1024, 1),
            "streams_open": round(rss_open / 1024, 1),
            "peak_during_events": round(peak_rss / 1024, 1),
            "hwm": round(memory_kib(server_pid)["VmHWM"] / 1024, 1),
        },
        "cpu_cores_during_events": cpu,
        "errors": errors,
    }
