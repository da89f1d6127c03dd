"""Publishing order events on Redis pub/sub, after the transition that made them has committed.

What is published is the event's protobuf message (`orderengine.v1.OrderEvent`, built by `workers.wire`), the one
WatchOrder streams: a server parses it once per event and hands the same message to every stream of the order,
instead of decoding JSON and building a message per stream (issue 14). `decode` still reads the JSON that earlier
versions published, so a server upgraded before the workers keeps their events.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from orderengine.v1 import order_service_pb2 as pb
from workers import wire
from workers.domain import OrderStatus
from workers.models import OrderEvent

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "orderengine:events:"


def channel_for(order_id: str) -> str:
    return CHANNEL_PREFIX + order_id


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """An event as a watcher hears it: what orders it (`seq`, `status`) and the message it streams."""

    order_id: str
    seq: int
    status: OrderStatus
    message: pb.OrderEvent

    @property
    def is_final(self) -> bool:
        return self.status.is_final


def encode(event: OrderEvent) -> bytes:
    return wire.event(event).SerializeToString()


def decode(data: bytes) -> PublishedEvent:
    """Raises (DecodeError, ValueError, KeyError) for bytes that are not a published event."""
    if data[:1] == b"{":  # JSON, as versions before issue 14 published
        event = OrderEvent.from_json(json.loads(data))
        return PublishedEvent(event.order_id, event.seq, event.status, wire.event(event))
    message = pb.OrderEvent.FromString(data)
    return PublishedEvent(message.order_id, message.seq, wire.STATUS_FROM_PB[message.status], message)


class EventPublisher:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def publish(self, *events: OrderEvent) -> None:
        """Best effort: the events are already stored, and watchers fill any gap from PostgreSQL. The events of one
        commit go out in order in one round trip."""
        encoded: list[tuple[OrderEvent, bytes]] = []
        for event in events:
            try:
                encoded.append((event, encode(event)))
            except Exception:  # a message the .proto cannot carry must not break the transition that committed it
                log.exception("order %s: event seq=%d not encoded, not published", event.order_id, event.seq)
        if not encoded:
            return
        try:
            if len(encoded) == 1:
                event, data = encoded[0]
                await self._redis.publish(channel_for(event.order_id), data)
                return
            async with self._redis.pipeline(transaction=False) as pipe:
                for event, data in encoded:
                    pipe.publish(channel_for(event.order_id), data)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            seqs = ", ".join(str(event.seq) for event, _ in encoded)
            log.warning("order %s: events seq=%s not published: %s", encoded[0][0].order_id, seqs, exc)
