"""How many WatchOrder streams one server process takes: a burst past gRPC's default pending-call limits is served,
and the deliberate cap (WATCH_MAX_STREAMS) answers RESOURCE_EXHAUSTED, never a silent CANCELLED."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.grpc_app import GrpcApp, start_grpc
from server.watch_limit import server_options
from tests.scratch_stores import free_port
from tests.stack import Stack
from workers.config import Settings
from workers.domain import OrderType
from workers.models import NewOrder
from workers.store import OrderStore

# grpc's own defaults cancel calls once 1,000 to 3,000 wait to be picked up; a burst must get past both.
BURST = 4_000


@pytest.fixture
async def pending_order(stack: Stack) -> AsyncIterator[str]:
    """An order stored but never queued: it stays pending, so its streams stay open until cancelled."""
    store = await OrderStore.open(stack.database_url, min_size=1, max_size=2)
    order, _ = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
    try:
        yield order.id
    finally:
        await store.forget_unstarted(order.id)
        await store.close()


async def in_process_server(stack: Stack, watch_max_streams: int = 20_000) -> GrpcApp:
    settings = Settings(
        redis_url=stack.redis_url,
        database_url=stack.database_url,
        grpc_host="127.0.0.1",
        watch_max_streams=watch_max_streams,
        auth="optional",  # callers without a key, as in the order-focused stacks
    )
    return await start_grpc(settings, port=free_port())


async def first_seq(call: grpc.aio.UnaryStreamCall[pb.WatchOrderRequest, pb.WatchOrderResponse]) -> int:
    response = await call.read()
    assert isinstance(response, pb.WatchOrderResponse)
    return response.event.seq


def test_pending_call_limits_follow_the_setting() -> None:
    options = dict(server_options(Settings(watch_max_streams=500, grpc_max_pending_calls=700)))
    assert options["grpc.server.max_pending_requests"] == 700
    assert options["grpc.server.max_pending_requests_hard_limit"] == 700
    assert options["grpc.max_concurrent_streams"] == 700


def test_pending_limit_below_the_stream_cap_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"GRPC_MAX_PENDING_CALLS \(10\) must be at least WATCH_MAX_STREAMS \(1000\)"):
        Settings(watch_max_streams=1_000, grpc_max_pending_calls=10)


async def test_past_the_cap_a_stream_is_refused_with_resource_exhausted(
    stack: Stack, pending_order: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = await in_process_server(stack, watch_max_streams=3)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            request = pb.WatchOrderRequest(order_id=pending_order)
            calls = [stub.WatchOrder(request) for _ in range(3)]
            for call in calls:
                assert await first_seq(call) == 1
            with caplog.at_level(logging.INFO):
                refused = stub.WatchOrder(request)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await first_seq(refused)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "already serves 3 WatchOrder streams (WATCH_MAX_STREAMS)" in (err.value.details() or "")
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a refusal, not a server error
            # Other calls are not limited, and a stream that ends frees its place.
            assert (await stub.GetOrder(pb.GetOrderRequest(order_id=pending_order))).order.order_id == pending_order
            calls[0].cancel()
            for _ in range(200):  # the handler leaves as soon as it sees the cancellation
                again = stub.WatchOrder(request)
                try:
                    assert await first_seq(again) == 1
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.01)
            else:
                pytest.fail("a cancelled stream never freed its place")
            for call in [*calls, again]:
                call.cancel()
    finally:
        await app.stop(grace=0)


async def test_a_burst_past_grpcs_default_pending_limit_is_served(stack: Stack, pending_order: str) -> None:
    app = await in_process_server(stack)
    codes: dict[grpc.StatusCode, int] = {}
    opened = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            request = pb.WatchOrderRequest(order_id=pending_order)
            calls = [stub.WatchOrder(request) for _ in range(BURST)]

            async def first(call: grpc.aio.UnaryStreamCall[pb.WatchOrderRequest, pb.WatchOrderResponse]) -> None:
                nonlocal opened
                try:
                    if await first_seq(call) == 1:
                        opened += 1
                except grpc.aio.AioRpcError as exc:
                    codes[exc.code()] = codes.get(exc.code(), 0) + 1

            await asyncio.gather(*(first(c) for c in calls))
            for call in calls:
                call.cancel()
    finally:
        await app.stop(grace=0)
    assert (opened, codes) == (BURST, {})


async def test_expected_refusals_are_not_logged_as_errors(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """NOT_FOUND and the like are answers the handler chose, not failures of the server (no ERROR, no traceback)."""
    app = await in_process_server(stack)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            with caplog.at_level(logging.INFO):
                for call in (
                    stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4()))),
                    stub.GetOrder(pb.GetOrderRequest(order_id="nope")),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call
                    assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await first_seq(stub.WatchOrder(pb.WatchOrderRequest(order_id=str(uuid.uuid4()))))
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await app.stop(grace=0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
