"""Fault 5: SIGTERM under load. A worker drains (finishes or requeues what it holds) and exits; the server stops
accepting, ends its streams with UNAVAILABLE (clients resume elsewhere) and exits; nothing is left stuck."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fault.tools import (
    FIGURES,
    EventCounter,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    final_after,
    non_final,
    place_orders,
    start_fault_stack,
    watch_many,
)
from tests.stack import Stores

ORDERS = 150


async def watch_health(target: str, seen: list[int], answered: asyncio.Event) -> None:
    """Records every status the server's health Watch stream sends until the stream ends."""
    request = health_pb2.HealthCheckRequest(service="orderengine.v1.OrderService")
    async with grpc.aio.insecure_channel(target) as ch:
        try:
            async for resp in health_pb2_grpc.HealthStub(ch).Watch(request):
                seen.append(resp.status)
                answered.set()
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), exc


async def test_sigterm_worker_and_server_under_load(fault_stores: Stores) -> None:
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        seen = EventCounter()
        watching = asyncio.create_task(watch_many(stack.grpc_target, order_ids, within=90, on_event=seen))
        await seen.reached(2 * ORDERS)
        in_flight = non_final(stack.database_url)
        worker = stack.processes["worker"]
        t0 = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert in_flight >= ORDERS // 2, f"only {in_flight} orders in flight at the worker's SIGTERM"
        worker_code = await asyncio.to_thread(worker.wait, 30)
        worker_exit_s = time.monotonic() - t0
        assert worker_code == 0

        server = stack.processes["serve"]
        health_seen: list[int] = []
        answered = asyncio.Event()
        health_watching = asyncio.create_task(watch_health(stack.grpc_target, health_seen, answered))
        await asyncio.wait_for(answered.wait(), 30)  # the first answer: SERVING, before the signal
        t0, server_term_wall = time.monotonic(), time.time()
        server.send_signal(signal.SIGTERM)
        server_code = await asyncio.to_thread(server.wait, 30)
        server_exit_s = time.monotonic() - t0
        assert server_code == 0
        await health_watching
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        # Load balancers must hear NOT_SERVING while the server drains, before it goes.
        assert health_seen[0] == serving and not_serving in health_seen, health_seen

        stack.spawn("worker-after-term", "worker")
        stack.spawn("serve-after-term", "serve")
        watched = await watching
        streaming = final_after(watched, server_term_wall)
        not_resumed = [w.order_id for w in streaming if not w.reconnects]
        assert not not_resumed, f"streams open at the server's SIGTERM that never resumed: {not_resumed}"
        assert_each_event_once(watched)
        check = check_ledger(stack)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        FIGURES["SIGTERM worker, then server"] = {
            "orders in flight": in_flight,
            "worker exit after SIGTERM (s)": round(worker_exit_s, 2),
            "server exit after SIGTERM (s)": round(server_exit_s, 2),
            "health during the drain": health_pb2.HealthCheckResponse.ServingStatus.Name(health_seen[-1]),
            "streams open at the server's SIGTERM": len(streaming),
            "of those resumed": len(streaming) - len(not_resumed),
            "lost": check.non_final,
            "replayed from genesis = stored pools": check.replayed,
        }
    finally:
        stack.stop()
