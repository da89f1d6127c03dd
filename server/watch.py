"""WatchOrder's fan-out: one Redis pub/sub connection per server process, shared by every stream.

The hub holds one pattern subscription to every order's event channel, made when the server starts, so a
stream only registers a queue under its order id: no Redis round trip per stream and nothing to undo but a dict
entry. A stream registers before it replays stored events, so nothing published in between is missed (events
are published after they are committed). Messages for orders nobody here watches are dropped before decoding.
When the connection drops, every stream is told (`HubDown`) and ends with UNAVAILABLE, so clients resume with
`from_seq`; the hub reconnects by itself, and new streams wait (briefly) until it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from workers.models import OrderEvent
from workers.publisher import CHANNEL_PREFIX, decode

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 3.0
_PATTERN = CHANNEL_PREFIX + "*"
_PREFIX = CHANNEL_PREFIX.encode()


@dataclass(frozen=True, slots=True)
class HubDown:
    reason: str


Item = OrderEvent | HubDown


class HubUnavailable(Exception):
    """Redis cannot be reached: no live events can be promised."""


class EventHub:
    def __init__(self, redis_url: str) -> None:
        self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=10)
        self._queues: dict[str, set[asyncio.Queue[Item]]] = {}
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="event-hub-reader")

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._drop_all("server shutting down")
        await self._redis.aclose()

    @property
    def watched_orders(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def subscription(self, order_id: str) -> AsyncIterator[asyncio.Queue[Item]]:
        """A queue of the order's live events, registered while the hub's subscription is live."""
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
            except TimeoutError:
                raise HubUnavailable("Redis pub/sub is unavailable") from None
        queue: asyncio.Queue[Item] = asyncio.Queue()
        queues = self._queues.setdefault(order_id, set())
        queues.add(queue)
        try:
            yield queue
        finally:
            queues.discard(queue)
            if not queues and self._queues.get(order_id) is queues:
                del self._queues[order_id]

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(_PATTERN)
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    if msg["type"] == "pmessage":
                        self._dispatch(msg["channel"], msg["data"])
                    elif msg["type"] == "psubscribe":
                        self._ready.set()
                        backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection broke: end every stream, then start over
                self._ready.clear()
                log.warning("event hub lost Redis (%s); ending streams of %d orders", exc, len(self._queues))
                self._drop_all(f"lost Redis pub/sub: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        queues = self._queues.get(channel[len(_PREFIX) :].decode())
        if queues:
            event = decode(data)
            for q in queues:
                q.put_nowait(event)

    def _drop_all(self, reason: str) -> None:
        down = HubDown(reason)
        for queues in self._queues.values():
            for q in queues:
                q.put_nowait(down)
