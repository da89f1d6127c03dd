"""The async enqueue writes what Dramatiq's own RedisBroker.enqueue writes, immediate and delayed."""

from __future__ import annotations

import redis as sync_redis
import redis.asyncio as aioredis
from dramatiq import Message

from tests.stack import Stores
from workers.broker import build_broker
from workers.config import Settings
from workers.queue import OrderQueue


def _messages(r: sync_redis.Redis, queue: str) -> list[Message[None]]:
    ids: list[bytes] = r.lrange(f"orderengine:{queue}", 0, -1)  # type: ignore[assignment]
    raw: list[bytes] = r.hmget(f"orderengine:{queue}.msgs", ids)  # type: ignore[assignment]
    return [Message.decode(m) for m in raw]


async def test_async_enqueue_matches_the_brokers_own(stores: Stores) -> None:
    url = stores.new_redis()
    broker = build_broker(Settings(redis_url=url))
    redis = aioredis.Redis.from_url(url)
    queue = OrderQueue(broker, redis)
    plain = sync_redis.Redis.from_url(url)
    try:
        queue.enqueue("order-a")
        await queue.enqueue_async("order-b")
        queue.enqueue("order-c", delay_ms=60_000)
        await queue.enqueue_async("order-d", delay_ms=60_000)
        now_msgs = _messages(plain, "orders")
        later_msgs = _messages(plain, "orders.DQ")
        assert [m.args for m in now_msgs] == [("order-a",), ("order-b",)]
        assert [m.args for m in later_msgs] == [("order-c",), ("order-d",)]
        for sync_one, async_one in (now_msgs, later_msgs):
            assert (async_one.queue_name, async_one.actor_name, async_one.kwargs) == (
                sync_one.queue_name,
                sync_one.actor_name,
                sync_one.kwargs,
            )
            assert set(async_one.options) == set(sync_one.options)
        assert abs(later_msgs[1].options["eta"] - later_msgs[0].options["eta"]) < 5_000
    finally:
        for key in plain.scan_iter("orderengine:*"):  # only what this test wrote, never a whole database
            plain.delete(key)
        plain.close()
        await redis.aclose()
        broker.close()
