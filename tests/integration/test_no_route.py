"""NO_ROUTE end to end: a pair the market cannot connect fails at once, permanently, on the first attempt.

In the genesis market every token reaches every other within one hop, so the test takes WIF's only pool off the
market (a venue delisting it) on a system of its own; the running worker notices, as it notices any pool change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import psycopg
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import assert_gap_free, count_rows, execute, statuses, watch_all
from tests.replay import pool_states
from tests.stack import Stack, Stores

DELISTED = "raydium-WIF-SOL"


@pytest.fixture(scope="module")
def delisted(stores: Stores) -> Iterator[Stack]:
    stack = Stack.start(stores)
    with psycopg.connect(stack.database_url) as conn:
        assert conn.execute("DELETE FROM pools WHERE id = %s", (DELISTED,)).rowcount == 1
    yield stack
    stack.stop()


@pytest.fixture
async def stub(delisted: Stack) -> AsyncIterator[pb_grpc.OrderServiceAsyncStub]:
    async with grpc.aio.insecure_channel(delisted.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


async def test_an_unroutable_order_fails_no_route_once(delisted: Stack, stub: pb_grpc.OrderServiceAsyncStub) -> None:
    market_before = pool_states(delisted.database_url)
    assert DELISTED not in market_before

    with pytest.raises(grpc.aio.AioRpcError) as quoted:
        await stub.GetQuote(pb.GetQuoteRequest(token_in="WIF", token_out="USDC", amount="10"))
    assert quoted.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (quoted.value.details() or "").startswith("NO_ROUTE: ")

    order_id = await execute(stub, "WIF", "USDC", "10")
    events = await watch_all(stub, order_id)
    assert statuses(events) == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_ROUTING, pb.ORDER_STATUS_FAILED]
    assert_gap_free(events)
    failed = events[-1]
    assert failed.attempt == 1  # permanent: no retry
    assert failed.error.code == "NO_ROUTE" and not failed.error.retryable
    assert "WIF" in failed.error.message and "USDC" in failed.error.message
    order = (await stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert order.status == pb.ORDER_STATUS_FAILED and order.error.code == "NO_ROUTE"
    assert count_rows(delisted.database_url, "settlements") == 0
    assert count_rows(delisted.database_url, "chain_transactions") == 0
    assert pool_states(delisted.database_url) == market_before

    # The rest of the market still trades.
    assert statuses(await watch_all(stub, await execute(stub, "SOL", "USDC", "1")))[-1] == pb.ORDER_STATUS_CONFIRMED
