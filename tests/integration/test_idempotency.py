"""Idempotency keys: concurrent duplicates make one order; keys are scoped per owner."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import count_rows, execute, watch_all
from tests.stack import Stack
from workers.account_store import AccountStore
from workers.api_keys import new_key
from workers.domain import OrderType
from workers.models import NewOrder
from workers.store import IdempotencyConflict, OrderStore


async def test_fifty_concurrent_duplicates_make_exactly_one_order(stub, stack: Stack) -> None:
    key = f"dup-{uuid.uuid4()}"
    before = count_rows(stack.database_url, "orders")
    ids = await asyncio.gather(*(execute(stub, amount="0.2", idempotency_key=key) for _ in range(50)))
    assert len(set(ids)) == 1
    assert count_rows(stack.database_url, "orders") == before + 1
    events = await watch_all(stub, ids[0])
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    ids_after = await asyncio.gather(*(execute(stub, amount="0.2", idempotency_key=key) for _ in range(5)))
    assert set(ids_after) == set(ids)  # also once the order is final


async def test_concurrent_conflicting_parameters_one_wins_rest_already_exist(stub, stack: Stack) -> None:
    key = f"conflict-{uuid.uuid4()}"
    results = await asyncio.gather(
        *(execute(stub, amount=f"0.{i + 1:02d}", idempotency_key=key) for i in range(10)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(e.code() == grpc.StatusCode.ALREADY_EXISTS for e in losers)


async def test_keys_are_scoped_per_owner(stack: Stack) -> None:
    store = await OrderStore.open(stack.database_url, min_size=1, max_size=2)
    accounts = AccountStore(store.pool)
    try:
        key = f"shared-{uuid.uuid4()}"
        suffix = uuid.uuid4().hex[:8]
        a = (await accounts.create_account(f"alice-{suffix}", None, new_key())).id
        b = (await accounts.create_account(f"bob-{suffix}", None, new_key())).id

        def order(owner: str, amount: int) -> NewOrder:
            return NewOrder(owner, OrderType.MARKET, "SOL", "USDC", amount, 50, key)

        alice, _ = await store.create_order(order(a, 10**9))
        bob, _ = await store.create_order(order(b, 2 * 10**9))
        assert alice.id != bob.id
        again, event = await store.create_order(order(a, 10**9))
        assert again.id == alice.id and event is None
        with pytest.raises(IdempotencyConflict):
            await store.create_order(order(b, 10**9))
        # Each owner sees only their own orders.
        assert await store.get_order(alice.id, b) is None
        assert [o.id for o in await store.list_orders(a, status=None, limit=10, before=None)] == [alice.id]
        for o in (alice, bob):
            assert await store.forget_unstarted(o.id)
    finally:
        await store.close()


async def test_a_cancelled_watch_frees_its_subscription(stack: Stack) -> None:
    """Runs a gRPC server in this process to look inside its hub; cancellation must reach the handlers."""
    from server.grpc_app import start_grpc
    from tests.scratch_stores import free_port
    from workers.config import Settings

    settings = Settings(
        redis_url=stack.redis_url, database_url=stack.database_url, grpc_host="127.0.0.1", auth="optional"
    )
    app = await start_grpc(settings, port=free_port())
    store = await OrderStore.open(stack.database_url, min_size=1, max_size=2)
    # An order stored but never queued stays pending, so its streams stay open until the client cancels them.
    order, _ = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            calls = [stub.WatchOrder(pb.WatchOrderRequest(order_id=order.id)) for _ in range(20)]
            for call in calls:
                first = await call.read()
                assert isinstance(first, pb.WatchOrderResponse) and first.event.seq == 1
            assert app.hub.watched_orders == 1  # twenty streams, one entry
            for call in calls:
                call.cancel()
            for _ in range(200):  # the handlers leave as soon as they see the cancellation
                if app.hub.watched_orders == 0:
                    break
                await asyncio.sleep(0.01)
            assert app.hub.watched_orders == 0
    finally:
        await store.forget_unstarted(order.id)
        await store.close()
        await app.stop(grace=0)
