"""What one enqueue costs the process that sends it, with no engine around it.

`python -m bench.enqueue_cost [N]` sends N messages through `workers.queue.BrokerQueue.enqueue_async` from one
event loop (uvloop), 64 at a time, on an embedded Redis of its own (never a shared one: the messages name no real
order), and reports the process's CPU time and the
wall time per message, in three rounds. The CPU figure counts every thread of the process (the enqueue pool's
included) and is far steadier than throughput on a shared machine.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from server.embedded import EmbeddedRedis
from workers.broker import build_broker
from workers.config import Settings
from workers.queue import BrokerQueue

CONCURRENCY = 64
ROUNDS = 3


async def measure(redis_url: str, n: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per enqueue, after a warm-up."""
    broker = build_broker(Settings(redis_url=redis_url))
    queue = BrokerQueue(broker)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            await queue.enqueue_async(f"bench-{i}")

    try:
        await asyncio.gather(*(one(i) for i in range(200)))
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6
    finally:
        queue.close()
        broker.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="oe-enqueue-")) / "redis", persist=False)
    url = server.start()
    try:
        for round_ in range(1, ROUNDS + 1):
            cpu, wall = uvloop.run(measure(url, n))
            print(
                f"round {round_}: {cpu:.0f} µs CPU, {wall:.0f} µs wall per enqueue ({n} sent, {CONCURRENCY} at a time)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
