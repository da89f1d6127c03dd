"""A lost pub/sub message does not cost a watcher an event: a real server fills the gap from PostgreSQL when a
later event arrives, and re-reads PostgreSQL after a silence when nothing follows the lost one.

The test plays the worker: it writes the order's transitions with the engine's own store, through one sink that
publishes and one that does not (a publish lost between commit and Redis), while a watcher streams through a real
`orderengine serve` process. A pub/sub connection of the test's own proves which events were never published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
import redis.asyncio as aioredis

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.stack import Stack, Stores
from workers.domain import LifecycleEvent, OrderError, OrderType
from workers.events import EventSink
from workers.models import NewOrder
from workers.publisher import EventPublisher, channel_for, decode
from workers.store import OrderStore


@pytest.fixture(scope="module")
def server(stores: Stores) -> Iterator[Stack]:
    # The reconciler must not re-drive the test's order: nothing but the test writes its events.
    stack = Stack.start(stores, RECONCILE_IDLE_SECONDS="600")
    stack.processes.pop("worker").terminate()
    yield stack
    stack.stop()


async def _watch(target: str, order_id: str, into: asyncio.Queue[pb.OrderEvent]) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        async for resp in pb_grpc.OrderServiceStub(ch).WatchOrder(pb.WatchOrderRequest(order_id=order_id), timeout=60):
            await into.put(resp.event)


async def test_a_lost_publish_is_filled_from_the_store(server: Stack) -> None:
    redis = aioredis.Redis.from_url(server.redis_url)
    publishing = await OrderStore.open(
        server.database_url, min_size=1, max_size=2, sink=EventSink(EventPublisher(redis))
    )
    losing = await OrderStore.open(server.database_url, min_size=1, max_size=2, sink=EventSink(None))
    pubsub = redis.pubsub()
    try:
        order, _ = await publishing.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
        await pubsub.subscribe(channel_for(order.id))
        assert (await pubsub.get_message(timeout=5.0) or {}).get("type") == "subscribe"
        got: asyncio.Queue[pb.OrderEvent] = asyncio.Queue()
        watching = asyncio.create_task(_watch(server.grpc_target, order.id, got))
        assert (await asyncio.wait_for(got.get(), 30)).seq == 1  # streaming live from here on

        # seq 2 is committed but never published; seq 3 is published: the watcher sees the gap and reads the store.
        assert await losing.transition(order.id, LifecycleEvent.START, attempt=1) is not None
        assert await publishing.transition(order.id, LifecycleEvent.ROUTE, attempt=1, route={"legs": []}) is not None
        middle = [await asyncio.wait_for(got.get(), 30) for _ in range(2)]
        assert [(e.seq, e.status) for e in middle] == [(2, pb.ORDER_STATUS_ROUTING), (3, pb.ORDER_STATUS_BUILDING)]

        # The last two, the terminal one included, are never published: only the idle re-read can bring them.
        assert await losing.transition(order.id, LifecycleEvent.SUBMIT, attempt=1) is not None
        assert await losing.fail(order.id, OrderError("TX_EXPIRED", "lost on purpose"), attempt=1) is not None
        last = [await asyncio.wait_for(got.get(), 60) for _ in range(2)]
        assert [(e.seq, e.status) for e in last] == [(4, pb.ORDER_STATUS_SUBMITTED), (5, pb.ORDER_STATUS_FAILED)]
        await asyncio.wait_for(watching, 10)  # the stream ended after the terminal event
        assert got.empty()

        await redis.publish(channel_for(order.id), b"end")  # what was published before this is read before it
        published = []
        while (msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=10.0)) is not None:
            if msg["data"] == b"end":
                break
            published.append(decode(msg["data"]).seq)
        assert published == [3], f"the test meant to lose 2, 4 and 5 but Redis carried {published}"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await publishing.close()
        await losing.close()
        await redis.aclose()
