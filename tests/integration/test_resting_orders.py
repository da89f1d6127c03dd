"""Limit orders over real gRPC, Redis and PostgreSQL: they rest, fire when the market reaches them (never below their
limit), stay open when it does not, and end cancelled or expired. Their own system: these tests move the market."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import assert_gap_free, execute, statuses, watch_all
from tests.stack import Stack, Stores

FAR_ABOVE = "1000000"  # USDC per SOL: a limit the market never reaches


@pytest.fixture(scope="module")
def resting_stack(stores: Stores) -> Iterator[Stack]:
    s = Stack.start(stores)
    yield s
    s.stop()


@pytest.fixture(scope="module")
async def rstub(resting_stack: Stack) -> AsyncIterator[pb_grpc.OrderServiceAsyncStub]:
    async with grpc.aio.insecure_channel(resting_stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


async def events_until(
    stub: pb_grpc.OrderServiceAsyncStub, order_id: str, status: int, within: float = 30, after_seq: int = 0
) -> list[pb.OrderEvent]:
    """The order's events up to and including the first with `status` past `after_seq` (the stream need not end)."""

    async def collect() -> list[pb.OrderEvent]:
        seen: list[pb.OrderEvent] = []
        async for r in stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id)):
            seen.append(r.event)
            if r.event.status == status and r.event.seq > after_seq:
                return seen
        name = pb.OrderStatus.Name(pb.OrderStatus.ValueType(status))
        raise AssertionError(f"the stream ended without {name}: {statuses(seen)}")

    return await asyncio.wait_for(collect(), within)


def in_seconds(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() + seconds) * 1e9))
    return ts


async def price_now(stub: pb_grpc.OrderServiceAsyncStub, amount: str = "1") -> Decimal:
    quote = await stub.GetQuote(pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount=amount), timeout=10)
    return Decimal(quote.route.amount_out) / Decimal(amount)


async def limit(stub: pb_grpc.OrderServiceAsyncStub, price: str | Decimal, amount: str = "1", **kw: object) -> str:
    return await execute(stub, "SOL", "USDC", amount, order_type=pb.ORDER_TYPE_LIMIT, limit_price=str(price), **kw)


async def test_a_limit_order_rests_then_fires_when_the_market_reaches_it_never_below(rstub) -> None:
    target = (await price_now(rstub) * Decimal("1.01")).quantize(Decimal("0.01"))
    order_id = await limit(rstub, target)
    rested = await events_until(rstub, order_id, pb.ORDER_STATUS_OPEN)
    assert statuses(rested) == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_OPEN]
    order = (await rstub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert (order.status, order.order_type, order.limit_price) == (
        pb.ORDER_STATUS_OPEN,
        pb.ORDER_TYPE_LIMIT,
        str(target),
    )

    # Other traders buy SOL until its price passes the limit; each of their settlements is a pool move.
    for _ in range(40):
        await watch_all(rstub, await execute(rstub, "USDC", "SOL", "50000", slippage_bps=500))
        if (await rstub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order.status != pb.ORDER_STATUS_OPEN:
            break
    events = await watch_all(rstub, order_id)
    assert statuses(events)[:3] == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_OPEN, pb.ORDER_STATUS_ROUTING]
    assert events[-1].status == pb.ORDER_STATUS_CONFIRMED, events[-1]
    assert_gap_free(events)
    assert Decimal(events[-1].executed_price) >= target


async def test_a_limit_the_market_never_reaches_stays_open(rstub, resting_stack: Stack) -> None:
    order_id = await limit(rstub, FAR_ABOVE)
    await events_until(rstub, order_id, pb.ORDER_STATUS_OPEN)
    # The market moves (each settlement is a pool move the trigger engine looks at) without reaching it.
    for _ in range(3):
        await watch_all(rstub, await execute(rstub, "USDC", "SOL", "1000"))
    page = await rstub.ListOrders(pb.ListOrdersRequest(status=pb.ORDER_STATUS_OPEN, page_size=500))
    assert order_id in {o.order_id for o in page.orders}
    order = (await rstub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert (order.status, order.last_seq) == (pb.ORDER_STATUS_OPEN, 2)


async def test_cancel_an_open_order_then_again_unchanged(rstub) -> None:
    order_id = await limit(rstub, FAR_ABOVE)
    await events_until(rstub, order_id, pb.ORDER_STATUS_OPEN)
    cancelled = (await rstub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=10)).order
    assert (cancelled.status, cancelled.last_seq) == (pb.ORDER_STATUS_CANCELLED, 3)
    events = await watch_all(rstub, order_id)  # ends: cancelled is terminal
    assert statuses(events) == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_OPEN, pb.ORDER_STATUS_CANCELLED]
    again = (await rstub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=10)).order
    assert again == cancelled


async def test_an_open_order_expires_at_its_time(rstub) -> None:
    order_id = await limit(rstub, FAR_ABOVE, expires_at=in_seconds(1.5))
    events = await watch_all(rstub, order_id, within=30)
    assert statuses(events) == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_OPEN, pb.ORDER_STATUS_EXPIRED]
    order = (await rstub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert order.expires_at.ToNanoseconds() <= events[-1].time.ToNanoseconds()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rstub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in (err.value.details() or "")


async def test_cancel_refuses_an_executing_or_final_order(rstub, resting_stack: Stack) -> None:
    done = await execute(rstub)
    await watch_all(rstub, done)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rstub.CancelOrder(pb.CancelOrderRequest(order_id=done), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "confirmed" in (err.value.details() or "")
    # An order mid-execution: put one in `building` as a worker would leave it between two steps.
    executing = await limit(rstub, FAR_ABOVE)
    await events_until(rstub, executing, pb.ORDER_STATUS_OPEN)
    with psycopg.connect(resting_stack.database_url, autocommit=True) as conn:
        conn.execute("UPDATE orders SET status = 'building' WHERE id = %s", (executing,))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rstub.CancelOrder(pb.CancelOrderRequest(order_id=executing), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "building" in (err.value.details() or "") and "started executing" in (err.value.details() or "")


async def test_cancel_of_another_accounts_order_or_an_unknown_one_is_not_found(rstub, resting_stack: Stack) -> None:
    theirs = await limit(rstub, FAR_ABOVE)
    await events_until(rstub, theirs, pb.ORDER_STATUS_OPEN)
    with psycopg.connect(resting_stack.database_url, autocommit=True) as conn:
        # Every order's owner is an account (a foreign key): make the other account first.
        conn.execute("INSERT INTO accounts (id, name) VALUES ('someone-else', 'someone-else') ON CONFLICT DO NOTHING")
        conn.execute("UPDATE orders SET owner_id = 'someone-else' WHERE id = %s", (theirs,))
    for order_id in (theirs, str(uuid.uuid4())):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rstub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with psycopg.connect(resting_stack.database_url) as conn:
        row = conn.execute("SELECT status, last_seq FROM orders WHERE id = %s", (theirs,)).fetchone()
    assert row == ("open", 2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rstub.CancelOrder(pb.CancelOrderRequest(order_id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("order_id: ")
