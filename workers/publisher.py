"""Publishing order events on Redis pub/sub, after the transition that made them has committed."""

from __future__ import annotations

import json
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from workers.models import OrderEvent

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "orderengine:events:"


def channel_for(order_id: str) -> str:
    return CHANNEL_PREFIX + order_id


def encode(event: OrderEvent) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":")).encode()


def decode(data: bytes | str) -> OrderEvent:
    return OrderEvent.from_json(json.loads(data))


class EventPublisher:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def publish(self, event: OrderEvent) -> None:
        """Best effort: the event is already stored, and watchers fill any gap from PostgreSQL."""
        try:
            await self._redis.publish(channel_for(event.order_id), encode(event))
        except (RedisError, OSError) as exc:
            log.warning("order %s: event seq=%d not published: %s", event.order_id, event.seq, exc)
