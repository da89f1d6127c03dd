"""Handing an order to the workers: one Dramatiq message naming the order, optionally delayed.

The server enqueues through this without importing the actors; the message is the same one `advance_order`
consumes. From async code the message goes out on the async Redis client, through the broker's own enqueue
script with the broker's own arguments, so no thread is needed and Dramatiq sees exactly what
`RedisBroker.enqueue` would have written (checked by tests/integration/test_queue.py).
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import dramatiq
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name

QUEUE_NAME = "orders"
ACTOR_NAME = "advance_order"


def message_for(order_id: str) -> dramatiq.Message[None]:
    return dramatiq.Message(queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(order_id,), kwargs={}, options={})


class OrderQueue:
    def __init__(self, broker: dramatiq.Broker, redis: aioredis.Redis | None = None) -> None:
        self._broker = broker
        self._redis = redis
        fast = redis is not None and isinstance(broker, RedisBroker)
        self._script = redis.register_script(broker.scripts["dispatch"].script) if fast else None  # type: ignore[union-attr, attr-defined]

    def enqueue(self, order_id: str, delay_ms: int = 0) -> None:
        self._broker.enqueue(message_for(order_id), delay=delay_ms if delay_ms > 0 else None)

    async def enqueue_async(self, order_id: str, delay_ms: int = 0) -> None:
        if self._script is None:
            await asyncio.to_thread(self.enqueue, order_id, delay_ms)
            return
        broker = self._broker
        assert isinstance(broker, RedisBroker)
        options: dict[str, object] = {"redis_message_id": str(uuid4())}
        queue_name = QUEUE_NAME
        if delay_ms > 0:
            queue_name = dq_name(QUEUE_NAME)
            options["eta"] = current_millis() + delay_ms
        message = message_for(order_id).copy(queue_name=queue_name, options=options)
        # The arguments RedisBroker._dispatch passes for "enqueue" (maintenance is left to the consumers).
        args = [
            "enqueue",
            current_millis(),
            queue_name,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            0,
            broker._max_unpack_size(),  # type: ignore[no-untyped-call]
            options["redis_message_id"],
            message.encode(),
        ]
        await self._script(keys=[broker.namespace], args=args)
