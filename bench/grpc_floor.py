"""The floor under the throughput target: what grpc.aio itself costs per order on this machine.

A servicer that does nothing (ExecuteOrder answers an id, WatchOrder yields five prebuilt events, as many as a
market order has) on the engine's server options and uvloop, driven like the benchmark drives the engine (the
load generator's channels, 32 orders in flight, each executed then watched to its last event). Server and client
run in processes of their own; the CPU each spent per order is read from /proc. Whatever the engine adds
(stores, broker, workers) comes on top of this, so it says how much of the 2 cores 500 orders/s leaves for them.

`python -m bench.grpc_floor [orders]` runs it on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop

from bench.drivers import GrpcDriver
from bench.launcher import ROOT
from bench.procstat import cpu_seconds
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.orphans import child_env
from server.watch_limit import server_options
from workers.config import get_settings

ORDER_ID = "00000000-0000-4000-8000-000000000000"
EVENTS = [
    pb.WatchOrderResponse(event=pb.OrderEvent(order_id=ORDER_ID, seq=seq, status=status))
    for seq, status in enumerate(
        (
            pb.ORDER_STATUS_PENDING,
            pb.ORDER_STATUS_ROUTING,
            pb.ORDER_STATUS_BUILDING,
            pb.ORDER_STATUS_SUBMITTED,
            pb.ORDER_STATUS_CONFIRMED,
        ),
        start=1,
    )
]
WARMUP_ORDERS = 300
CONCURRENCY = 32


class NothingServicer(pb_grpc.OrderServiceServicer):
    async def ExecuteOrder(self, request: pb.ExecuteOrderRequest, context: Any) -> pb.ExecuteOrderResponse:
        return pb.ExecuteOrderResponse(order_id=ORDER_ID)

    async def WatchOrder(self, request: pb.WatchOrderRequest, context: Any) -> AsyncIterator[pb.WatchOrderResponse]:
        for event in EVENTS:
            yield event


async def _serve() -> None:
    server = grpc.aio.server(options=server_options(get_settings()))
    # Only the two RPCs an order uses are driven; the others answer UNIMPLEMENTED, as the base class does.
    pb_grpc.add_OrderServiceServicer_to_server(NothingServicer(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def _drive(target: str, orders: int, server_pid: int) -> dict[str, Any]:
    driver = GrpcDriver(target)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            order_id = await driver.execute(i)
            async for _ in driver.watch(order_id):
                pass

    try:
        await asyncio.gather(*(one(i) for i in range(WARMUP_ORDERS)))
        server0, client0, t0 = cpu_seconds(server_pid), time.process_time(), time.monotonic()
        await asyncio.gather(*(one(i) for i in range(orders)))
        wall = time.monotonic() - t0
        server_s, client_s = cpu_seconds(server_pid) - server0, time.process_time() - client0
    finally:
        await driver.close()
    return {
        "orders": orders,
        "events_per_order": len(EVENTS),
        "concurrency": CONCURRENCY,
        "orders_per_s": round(orders / wall, 1),
        "server_ms_per_order": round(1000 * server_s / orders, 3),
        "client_ms_per_order": round(1000 * client_s / orders, 3),
        "server_cores": round(server_s / wall, 3),
        "client_cores": round(client_s / wall, 3),
    }


async def grpc_floor(orders: int = 3_000) -> dict[str, Any]:
    """Starts the do-nothing server, drives it from a client process, returns both sides' CPU per order."""
    env = child_env(dict(os.environ))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.grpc_floor", "serve", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(await asyncio.wait_for(server.stdout.readline(), 30))
        client = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.grpc_floor", "drive", f"127.0.0.1:{port}", str(orders), str(server.pid)),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(client.communicate(), 300)
        if client.returncode != 0:
            raise RuntimeError(f"the floor's client exited with {client.returncode}")
        result: dict[str, Any] = json.loads(out)
        return result
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()


def main() -> None:
    uvloop.install()
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        asyncio.run(_serve())
    elif len(sys.argv) > 1 and sys.argv[1] == "drive":
        print(json.dumps(asyncio.run(_drive(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))))
    else:
        print(json.dumps(asyncio.run(grpc_floor(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000)), indent=2))


if __name__ == "__main__":
    main()
