"""Fault 4: PostgreSQL is stopped for 10 s mid-run, then started. New orders get UNAVAILABLE quickly and nothing
half-written; no accepted order is lost; every process recovers by itself, without a restart."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import (
    FIGURES,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    execute_when_available,
    non_final,
    place_orders,
    start_fault_stack,
    watch_many,
)
from tests.stack import Stores

ORDERS = 100
OUTAGE_S = 10


async def test_postgres_down_for_ten_seconds(fault_stores: Stores) -> None:
    pg = fault_stores.postgres_server
    assert pg is not None
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        in_flight = non_final(stack.database_url)
        pg.pause()
        down_at = time.monotonic()
        assert in_flight >= ORDERS // 2, f"only {in_flight} orders in flight when PostgreSQL stopped"
        refused = 0
        answer_times: list[float] = []
        async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            health = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() - down_at < OUTAGE_S:
                t0 = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ExecuteOrder(
                        pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="1"), timeout=10
                    )
                answer_times.append(time.monotonic() - t0)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
                assert "PostgreSQL" in (err.value.details() or "")
                refused += 1
                await asyncio.sleep(0.5)  # the outage lasts OUTAGE_S; this paces the probes within it
            status = await health.Check(health_pb2.HealthCheckRequest(service="orderengine.v1.OrderService"))
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            pg.resume()
            up_at = time.monotonic()

            # The same processes serve again, without a restart: the first order after the outage confirms.
            after = await execute_when_available(stub, within=30)
            first_ok_s = time.monotonic() - up_at

        watched = await watch_many(stack.grpc_target, [*order_ids, after], within=90)
        recovered_s = time.monotonic() - up_at
        check = check_ledger(stack)
        assert_nothing_lost(check, ORDERS + 1)  # refused requests stored nothing
        assert check.confirmed == ORDERS + 1
        assert_each_event_once(watched)
        FIGURES["PostgreSQL down 10 s"] = {
            "orders in flight just before the stop": in_flight,
            "requests refused UNAVAILABLE": refused,
            "slowest refusal (s)": round(max(answer_times), 2),
            "half-written orders": check.orders - ORDERS - 1,
            "lost": check.non_final,
            "first order accepted after restart (s)": round(first_ok_s, 2),
            "replayed from genesis = stored pools": check.replayed,
            "all final after restart (s)": round(recovered_s, 1),
        }
    finally:
        if pg is not None:
            pg.resume()
        stack.stop()
