"""How many concurrent server streams one grpc.aio process accepts, with no engine code at all.

`python -m bench.stream_limit [N]` serves grpc.aio's stock health service in this process, opens N `Watch` streams
over 8 connections, and counts how many received their first message within 60 s and how the others ended: once
with gRPC's default server options and once with the engine's (`server.watch_limit.server_options`). With the
defaults, calls that wait to be picked up are CANCELLED past 1,000-3,000 of them; with the engine's they wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # public; grpc-stubs lacks it

from server.watch_limit import server_options
from workers.config import Settings

CONNECTIONS = 8
WAIT_S = 60.0


async def count_open_streams(n: int, options: Sequence[tuple[str, int]]) -> tuple[int, Counter[str]]:
    server = grpc.aio.server(options=options)
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    opened = 0
    ended: Counter[str] = Counter()
    all_settled = asyncio.Event()

    def settle() -> None:
        if opened + ended.total() == n:
            all_settled.set()

    async def watch(i: int) -> None:
        nonlocal opened
        call = health_pb2_grpc.HealthStub(channels[i % CONNECTIONS]).Watch(health_pb2.HealthCheckRequest())
        try:
            await call.read()
        except grpc.aio.AioRpcError as exc:
            ended[exc.code().name] += 1
            settle()
            return
        opened += 1
        settle()
        await asyncio.Event().wait()  # hold the stream open until cancelled

    tasks = [asyncio.create_task(watch(i)) for i in range(n)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_settled.wait(), WAIT_S)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close(None)
    await server.stop(0)
    return opened, ended


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for name, options in (
        ("gRPC's default server options", [("grpc.max_concurrent_streams", 1_000_000)]),
        ("the engine's server options", server_options(Settings())),
    ):
        opened, ended = asyncio.run(count_open_streams(n, options))
        others = ", ".join(f"{count} {code}" for code, count in ended.items()) or "none failed"
        print(f"grpc {grpc.__version__}, {name}: {opened} of {n} health Watch streams open ({others})")


if __name__ == "__main__":
    main()
