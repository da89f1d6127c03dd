"""Fault 3: Redis loses all its data mid-run (killed and restarted empty); every accepted order still completes:
the reconciler re-drives the orders whose broker messages vanished. And while Redis is down, new orders get
UNAVAILABLE with nothing stored, open streams end UNAVAILABLE, and everything recovers when it returns."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import (
    FIGURES,
    EventCounter,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    execute_when_available,
    final_after,
    non_final,
    place_orders,
    reconciled,
    start_fault_stack,
    watch_many,
)
from tests.helpers import count_rows
from tests.stack import Stores

ORDERS = 200


async def test_redis_restarted_empty_mid_run(fault_stores: Stores) -> None:
    assert fault_stores.redis_server is not None
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        in_flight = non_final(stack.database_url)
        fault_stores.redis_server.restart_empty()
        lost_at = time.monotonic()
        assert in_flight >= ORDERS // 2, f"only {in_flight} orders in flight when Redis lost its data"

        watched = await watch_many(stack.grpc_target, order_ids, within=90)
        recovered_s = time.monotonic() - lost_at
        check = check_ledger(stack)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        assert_each_event_once(watched)
        # The queue's messages are gone with Redis's data: only the reconciler can have brought these back.
        nudged = reconciled(stack.database_url)
        assert nudged > 0
        FIGURES["Redis data lost"] = {
            "orders": ORDERS,
            "in flight just before the loss": in_flight,
            "confirmed": check.confirmed,
            "lost": check.non_final,
            "re-driven by the reconciler": nudged,
            "replayed from genesis = stored pools": check.replayed,
            "all final after loss (s)": round(recovered_s, 1),
        }
    finally:
        stack.stop()


async def test_redis_down_refuses_new_orders_then_recovers(fault_stores: Stores) -> None:
    redis = fault_stores.redis_server
    assert redis is not None
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, 50)
        seen = EventCounter()
        watching = asyncio.create_task(watch_many(stack.grpc_target, order_ids, within=90, on_event=seen))
        # Every stream open (50 events in all could come from fewer streams: one opened after the outage began
        # is no stream that was cut, and would not resume).
        await seen.streaming(50)

        in_flight = non_final(stack.database_url)
        redis.kill()
        killed_wall = time.time()
        assert in_flight >= 25, f"only {in_flight} orders in flight when Redis went down"
        before = count_rows(stack.database_url, "orders")
        refused = 0
        slowest = 0.0
        async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            for _ in range(5):
                t0 = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ExecuteOrder(pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="1"))
                slowest = max(slowest, time.monotonic() - t0)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "Redis" in (err.value.details() or "")
                refused += 1
        half_written = count_rows(stack.database_url, "orders") - before
        assert count_rows(stack.database_url, "orders") == before  # nothing half-written

        redis.revive()
        up_at = time.monotonic()
        async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
            after = await execute_when_available(pb_grpc.OrderServiceStub(ch), within=30)
        streams = await watching
        # The server's subscription dropped with Redis: every stream still open then must have resumed.
        streaming = final_after(streams, killed_wall)
        assert streaming, "no stream was open when Redis went down"
        not_resumed = [w.order_id for w in streaming if not w.reconnects]
        assert not not_resumed, f"streams open when Redis went down that never resumed: {not_resumed}"
        watched = [*streams, *await watch_many(stack.grpc_target, [after], within=60)]
        all_final_s = time.monotonic() - up_at
        assert_each_event_once(watched)
        check = check_ledger(stack)
        assert_nothing_lost(check, 51)
        FIGURES["Redis down"] = {
            "orders in flight when Redis went down": in_flight,
            "streams open then": len(streaming),
            "of those resumed": len(streaming) - len(not_resumed),
            "requests refused UNAVAILABLE": refused,
            "slowest refusal (s)": round(slowest, 2),
            "half-written orders": half_written,
            "lost": check.non_final,
            "replayed from genesis = stored pools": check.replayed,
            "all final after Redis returned (s)": round(all_final_s, 1),
        }
    finally:
        stack.stop()
