"""The one event path: every event the store commits reaches the sink once, after its commit, and Redis from there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis

from tests.stack import Stores
from workers.domain import LifecycleEvent, OrderError, OrderStatus, OrderType
from workers.events import EventSink
from workers.market import Pool
from workers.migrate import migrate
from workers.models import EventDetails, NewOrder, OrderEvent
from workers.publisher import CHANNEL_PREFIX, EventPublisher, PublishedEvent, channel_for, decode
from workers.store import OrderStore, Settlement


@dataclass
class Seen:
    """An observer that records each event with what PostgreSQL held for it at that moment."""

    database_url: str
    events: list[OrderEvent] = field(default_factory=list)
    stored_then: list[bool] = field(default_factory=list)

    def __call__(self, event: OrderEvent) -> None:
        self.events.append(event)
        # Another connection sees the row only if the transaction that wrote it has committed.
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT 1 FROM order_events WHERE order_id = %s AND seq = %s", (event.order_id, event.seq)
            ).fetchone()
        self.stored_then.append(row is not None)


@dataclass
class Path:
    store: OrderStore
    seen: Seen
    redis: aioredis.Redis


@pytest.fixture(scope="module")
async def path(stores: Stores) -> AsyncIterator[Path]:
    url = stores.new_database()
    migrate(url)
    redis = aioredis.Redis.from_url(stores.new_redis())
    seen = Seen(url)

    def broken(event: OrderEvent) -> None:
        raise RuntimeError("an observer with a bug")

    sink = EventSink(EventPublisher(redis), observers=[broken])
    sink.observe(seen)
    store = await OrderStore.open(url, min_size=1, max_size=2, sink=sink)
    yield Path(store, seen, redis)
    await store.close()
    await redis.aclose()


@asynccontextmanager
async def subscribed(redis: aioredis.Redis, order_id: str) -> AsyncIterator[Any]:
    """A pub/sub connection on the order's channel, once Redis has confirmed the subscription."""
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel_for(order_id))
        confirmation = await pubsub.get_message(timeout=5.0)
        assert confirmation is not None and confirmation["type"] == "subscribe"
        yield pubsub
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _read(pubsub: Any, count: int) -> list[PublishedEvent]:
    out: list[PublishedEvent] = []
    while len(out) < count:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
        if msg is None:
            break
        out.append(decode(msg["data"]))
    return out


async def test_each_committed_event_reaches_the_sink_once_after_commit_and_then_redis(path: Path) -> None:
    store, seen = path.store, path.seen
    seen.events.clear()
    seen.stored_then.clear()
    order, pending = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
    assert pending is not None
    async with subscribed(path.redis, order.id) as pubsub:
        started = await store.transition(order.id, LifecycleEvent.START, attempt=1)
        # Not allowed from routing: nothing is written, so nothing is told.
        assert await store.transition(order.id, LifecycleEvent.CONFIRM, attempt=1) is None
        retried = await store.start_retry(order.id, 1, OrderError("DEX_UNAVAILABLE", "no answer", retryable=True))
        routed = await store.transition(
            order.id, LifecycleEvent.ROUTE, EventDetails(dex="raydium"), attempt=2, route={"legs": []}
        )
        failed = await store.fail(order.id, OrderError("NO_ROUTE", "none"), attempt=2)
        published = await _read(pubsub, 4)
    written = [pending, started, retried, routed, failed]
    assert all(e is not None for e in written)
    assert seen.events == written
    assert [e.status for e in seen.events] == [
        OrderStatus.PENDING,
        OrderStatus.ROUTING,
        OrderStatus.ROUTING,
        OrderStatus.BUILDING,
        OrderStatus.FAILED,
    ]
    assert all(seen.stored_then)
    assert [(e.seq, e.status) for e in published] == [(e.seq, e.status) for e in written[1:] if e is not None]


async def test_a_new_orders_pending_event_is_observed_but_not_published(path: Path) -> None:
    """No one can watch an order before its client has its id, so `pending` goes to the observers and PostgreSQL
    only; the first message on the order's channel is the next event."""
    pubsub = path.redis.pubsub()
    try:
        await pubsub.psubscribe(CHANNEL_PREFIX + "*")
        confirmation = await pubsub.get_message(timeout=5.0)
        assert confirmation is not None and confirmation["type"] == "psubscribe"
        path.seen.events.clear()
        order, pending = await path.store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
        started = await path.store.transition(order.id, LifecycleEvent.START, attempt=1)
        assert pending is not None and started is not None
        assert path.seen.events == [pending, started]
        first = None
        while first is None:  # pub/sub is server-wide: skip what other orders publish
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            assert msg is not None, "nothing published for the order"
            if msg["channel"].decode() == channel_for(order.id):
                first = decode(msg["data"])
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert (first.seq, first.status) == (2, OrderStatus.ROUTING)


async def test_a_repeated_idempotency_key_tells_nothing(path: Path) -> None:
    new = NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50, idempotency_key="once")
    first, event = await path.store.create_order(new)
    assert event is not None
    before = len(path.seen.events)
    again, none = await path.store.create_order(new)
    assert (again.id, none) == (first.id, None)
    assert len(path.seen.events) == before


async def test_a_settlement_is_told_after_its_transaction_commits(path: Path) -> None:
    store, seen = path.store, path.seen
    order, _ = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
    for event in (LifecycleEvent.START, LifecycleEvent.ROUTE, LifecycleEvent.SUBMIT):
        assert await store.transition(order.id, event, attempt=1) is not None
    submitted = await store.get_order(order.id)
    assert submitted is not None and submitted.status is OrderStatus.SUBMITTED
    before = len(seen.events)

    def decide(pools: dict[str, Pool]) -> Settlement:
        return Settlement(amount_out=1, executed_price="1", amount_out_text="1", legs=[], pools_after={})

    confirmed = await store.settle(submitted, "sig", [], decide)
    assert confirmed is not None and confirmed.status is OrderStatus.CONFIRMED
    assert seen.events[before:] == [confirmed]
    assert seen.stored_then[-1]  # the observer ran after COMMIT, not inside the settling transaction
    assert await store.settle(submitted, "sig", [], decide) is None  # landed once
    assert seen.events[before:] == [confirmed]
