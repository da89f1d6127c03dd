"""Cancel racing trigger, 1,000 times, through the real guarded transitions on PostgreSQL: each race ends in exactly
one story, and the order's history shows which won. The cancels go through gRPC as a client sends them; the
triggers are the trigger engine's own `fire`, run in this process on an engine opened on the same stores.

The orders' limit is far above the market, so the trigger engine itself never fires them, and one that `fire` forces
finds its price missing when the worker routes it: it returns to `open` (`reopen`, LIMIT_NOT_REACHED) instead of
filling below its limit. Those are cancelled afterwards, so every story ends."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import FIGURES
from tests.helpers import assert_gap_free, statuses, watch_all
from tests.integration.test_resting_orders import events_until
from tests.stack import Stack, Stores
from workers import triggers
from workers.config import Settings
from workers.domain import DEFAULT_OWNER, LifecycleEvent, OrderStatus, OrderType
from workers.models import NewOrder
from workers.runtime import Engine

RACES = 1000
BATCH = 100


@pytest.fixture(scope="module")
def race_stack(stores: Stores) -> Iterator[Stack]:
    s = Stack.start(stores)
    yield s
    s.stop()


@pytest.fixture(scope="module")
async def race_stub(race_stack: Stack) -> AsyncIterator[pb_grpc.OrderServiceAsyncStub]:
    async with grpc.aio.insecure_channel(race_stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


async def open_orders(engine: Engine, n: int) -> list[str]:
    """n limit orders resting in `open`, at a limit the market never reaches."""
    ids = []
    for _ in range(n):
        new = NewOrder(
            owner_id=DEFAULT_OWNER,
            order_type=OrderType.LIMIT,
            token_in="SOL",
            token_out="USDC",
            amount_in=1_000_000,
            slippage_bps=500,
            limit_price=Decimal("1000000"),
            trigger_in="So11111111111111111111111111111111111111112",
            trigger_out="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        )
        order, _ = await engine.store.create_order(new)
        assert await engine.store.transition(order.id, LifecycleEvent.REST) is not None
        ids.append(order.id)
    return ids


async def test_a_thousand_cancel_vs_trigger_races_each_end_in_exactly_one_story(race_stack: Stack, race_stub) -> None:
    settings = Settings(redis_url=race_stack.redis_url, database_url=race_stack.database_url, market_latency="zero")
    engine = await Engine.open(settings, pool_size=20)
    rng = random.Random(10)
    try:
        ids = await open_orders(engine, RACES)
        won: dict[str, str] = {}

        async def race(order_id: str) -> None:
            order = await engine.store.get_order(order_id)
            assert order is not None and order.status is OrderStatus.OPEN

            async def cancel() -> bool:
                try:
                    await race_stub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=30)
                except grpc.aio.AioRpcError as e:
                    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
                    return False
                return True

            # Which one the event loop starts first is drawn, so neither side always has a head start.
            if rng.random() < 0.5:
                cancelled, fired = await asyncio.gather(cancel(), triggers.fire(engine, order))
            else:
                fired, cancelled = await asyncio.gather(triggers.fire(engine, order), cancel())
            assert cancelled or fired, f"{order_id}: neither the cancel nor the trigger moved it"
            # Both, when the worker reopened the fired order (its limit is out of reach) before the cancel came:
            # then the cancel ends the second wait, and the history shows the trigger, the reopen and the cancel.
            won[order_id] = "both" if cancelled and fired else "cancel" if cancelled else "trigger"

        for start in range(0, RACES, BATCH):
            await asyncio.gather(*(race(i) for i in ids[start : start + BATCH]))

        async def story(order_id: str) -> list[pb.OrderEvent]:
            if won[order_id] == "trigger":
                # Wait for the worker to reopen it (seq 4), then end the story with a cancel.
                reopened = (await events_until(race_stub, order_id, pb.ORDER_STATUS_OPEN, after_seq=3, within=120))[-1]
                assert reopened.seq == 4 and reopened.error.code == "LIMIT_NOT_REACHED", reopened
                await race_stub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), timeout=30)
            return await watch_all(race_stub, order_id, within=120)

        for start in range(0, RACES, BATCH):
            histories = await asyncio.gather(*(story(i) for i in ids[start : start + BATCH]))
            for order_id, history in zip(ids[start : start + BATCH], histories, strict=True):
                assert_gap_free(history)
                seen = statuses(history)
                if won[order_id] == "cancel":
                    assert seen == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_OPEN, pb.ORDER_STATUS_CANCELLED]
                else:  # the trigger won; the order came back to open and was cancelled there
                    assert seen == [
                        pb.ORDER_STATUS_PENDING,
                        pb.ORDER_STATUS_OPEN,
                        pb.ORDER_STATUS_ROUTING,
                        pb.ORDER_STATUS_OPEN,
                        pb.ORDER_STATUS_CANCELLED,
                    ], seen
        wins = sum(1 for w in won.values() if w == "cancel")
        reopened_first = sum(1 for w in won.values() if w == "both")
        assert 0 < wins < RACES, "both sides must win some races for the test to mean anything"
        FIGURES["cancel vs trigger races"] = {
            "races": RACES,
            "cancel won (open -> cancelled)": wins,
            "trigger won (open -> routing)": RACES - wins,
            "of which reopened before the cancel came": reopened_first,
            "two outcomes from one open": 0,
        }
    finally:
        await engine.close()
