"""One load-generator process of the fan-out benchmark (`bench.fanout` starts several, so that no single client
process is the ceiling).

It reads its job, one JSON line on stdin: {"via": "grpc" | "bridge" | "grpc-web", "target": "host:port", "http_port": N,
"channels": N, "open_timeout_s": T, "watch_timeout_s": W, "order_ids": [one per stream]}. It opens every
stream and prints
{"subscribed": n, ...} once each has its `pending` event (or failed, or T seconds passed); then it follows them to
their terminal events, or until "stop" arrives on stdin, and prints {"result": {...}}: per stream its last seq,
whether seqs came 1, 2, 3... with no gap or repeat, and its final status; every delivery latency; counts of
the errors by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any

import grpc

from bench.drivers import FINAL, BridgeDriver, Driver, GrpcDriver
from bench.grpc_web_driver import GrpcWebDriver
from bench.procstat import self_cpu_seconds

# WebSocket handshakes in flight at once per client process (the bridge's accept backlog is finite).
OPEN_CONCURRENCY = 256


def _driver(job: dict[str, Any]) -> Driver:
    # A stream stays open from before the workers start until its order is final: the whole run.
    timeout = float(job["watch_timeout_s"])
    if job["via"] == "bridge":
        return BridgeDriver(int(job["http_port"]), connections=4, api_key=job.get("api_key"), watch_timeout=timeout)
    if job["via"] == "grpc-web":
        return GrpcWebDriver(int(job["http_port"]), connections=4, watch_timeout=timeout, api_key=job.get("api_key"))
    return GrpcDriver(job["target"], channels=int(job["channels"]), api_key=job.get("api_key"), watch_timeout=timeout)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    return type(exc).__name__


async def run(job: dict[str, Any], stdin: asyncio.StreamReader) -> dict[str, Any]:
    order_ids: list[str] = job["order_ids"]
    n = len(order_ids)
    driver = _driver(job)
    last = [0] * n
    in_order = [True] * n
    final = [""] * n
    delivery: list[float] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []
    settled = 0  # streams that have their first event, or failed before it
    all_settled = asyncio.Event()
    opening = asyncio.Semaphore(OPEN_CONCURRENCY if job["via"] != "grpc" else n)

    def settle() -> None:
        nonlocal settled
        settled += 1
        if settled == n:
            all_settled.set()

    async def stream(k: int) -> None:
        await opening.acquire()
        first = True
        try:
            async for status, seq, commit in driver.watch(order_ids[k]):
                if first:
                    first = False
                    opening.release()
                    settle()
                if seq != last[k] + 1:
                    in_order[k] = False
                last[k] = seq
                if seq > 1:
                    delivery.append(time.time() - commit)
                if status in FINAL:
                    final[k] = status
                    return
        except Exception as exc:
            errors[_kind(exc)] += 1
            if len(samples) < 3:
                samples.append(f"{_kind(exc)}: {' '.join(str(exc).split())[:200]}")
        finally:
            if first:
                opening.release()
                settle()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(stream(k)) for k in range(n)]
    if n == 0:
        all_settled.set()
    with contextlib.suppress(TimeoutError):  # report what opened in time; the rest count as incomplete
        await asyncio.wait_for(all_settled.wait(), float(job["open_timeout_s"]))
    subscribed = sum(1 for k in range(n) if last[k] >= 1)
    ready = {"subscribed": subscribed, "open_s": round(time.monotonic() - t0, 2), "cpu_s": self_cpu_seconds()}
    print(json.dumps(ready), flush=True)

    stop = asyncio.ensure_future(stdin.readline())
    everything = asyncio.ensure_future(asyncio.wait(tasks))
    await asyncio.wait({stop, everything}, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stop.cancel()
    everything.cancel()
    await driver.close()
    return {
        "last_seq": last,
        "in_order": in_order,
        "final": final,
        "delivery_s": delivery,
        "errors": dict(errors),
        "error_samples": samples,
        "cpu_s": self_cpu_seconds(),
    }


async def main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    job = json.loads(await stdin.readline())
    result = await run(job, stdin)
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
