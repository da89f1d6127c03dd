"""How many concurrent server streams one grpc.aio process accepts, with no engine code at all.

`python -m bench.stream_limit [N]` serves grpc.aio's stock health service in this process, opens N `Watch` streams
over 8 connections, and reports how many received their first message within 10 s. It isolates the ceiling the
fan-out scenario meets from anything in `server/`.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # public; grpc-stubs lacks it

CONNECTIONS = 8
WAIT_S = 10.0


async def count_open_streams(n: int) -> int:
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 1_000_000)])
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    opened = 0

    async def watch(i: int) -> None:
        nonlocal opened
        call = health_pb2_grpc.HealthStub(channels[i % CONNECTIONS]).Watch(health_pb2.HealthCheckRequest())
        await call.read()
        opened += 1
        await asyncio.Event().wait()  # hold the stream open until cancelled

    tasks = [asyncio.create_task(watch(i)) for i in range(n)]
    await asyncio.sleep(WAIT_S)  # the measurement window: how many opened within it
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close(None)
    await server.stop(0)
    return opened


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    opened = asyncio.run(count_open_streams(n))
    print(f"grpc {grpc.__version__}: {opened} of {n} health Watch streams open after {WAIT_S:.0f} s")


if __name__ == "__main__":
    main()
