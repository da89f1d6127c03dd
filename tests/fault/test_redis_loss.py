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
    non_final,
    place_orders,
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

        lost_at = time.monotonic()
        fault_stores.redis_server.restart_empty()

        watched = await watch_many(stack.grpc_target, order_ids, within=90)
        recovered_s = time.monotonic() - lost_at
        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        assert_each_event_once(watched)
        FIGURES["Redis data lost"] = {
            "orders": ORDERS,
            "in flight at loss": in_flight,
            "confirmed": check.confirmed,
            "lost": check.non_final,
            "settled twice": check.double_settled,
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
        await seen.reached(50)

        redis.kill()
        before = count_rows(stack.database_url, "orders")
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
        assert count_rows(stack.database_url, "orders") == before  # nothing half-written

        redis.revive()
        up_at = time.monotonic()
        async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
            after = await execute_when_available(pb_grpc.OrderServiceStub(ch), within=30)
        watched = [*await watching, *await watch_many(stack.grpc_target, [after], within=60)]
        assert_each_event_once(watched)
        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, 51)
        FIGURES["Redis down"] = {
            "requests refused UNAVAILABLE": 5,
            "slowest refusal (s)": round(slowest, 2),
            "half-written orders": 0,
            "watchers that resumed": sum(1 for w in watched if w.reconnects),
            "lost": check.non_final,
            "all final after Redis returned (s)": round(time.monotonic() - up_at, 1),
        }
    finally:
        stack.stop()
