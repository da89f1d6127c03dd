"""WatchOrder's fan-out: one Redis pub/sub connection per server process, shared by every stream.

A stream subscribes to its order's channel (the hub subscribes on Redis once per order, however many streams
watch it) and waits for Redis to confirm before it replays stored events, so nothing published in between is
missed. When the connection drops, every stream is told (`HubDown`) and ends with UNAVAILABLE, so clients
resume with `from_seq`; the hub reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from workers.models import OrderEvent
from workers.publisher import CHANNEL_PREFIX, channel_for, decode

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class HubDown:
    reason: str


Item = OrderEvent | HubDown


class HubUnavailable(Exception):
    """Redis cannot be reached: no live events can be promised."""


class EventHub:
    def __init__(self, redis_url: str) -> None:
        self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=10)
        self._pubsub = self._redis.pubsub()
        self._queues: dict[str, set[asyncio.Queue[Item]]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._has_channels = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="event-hub-reader")

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._drop_all("server shutting down")
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()

    @property
    def watched_orders(self) -> int:
        return len(self._queues)

    @contextlib.asynccontextmanager
    async def subscription(self, order_id: str) -> AsyncIterator[asyncio.Queue[Item]]:
        """A queue of the order's live events, subscribed (and confirmed by Redis) before it is handed out."""
        channel = channel_for(order_id)
        queue: asyncio.Queue[Item] = asyncio.Queue()
        await self._add(channel, queue)
        try:
            yield queue
        finally:
            await self._remove(channel, queue)

    async def _add(self, channel: str, queue: asyncio.Queue[Item]) -> None:
        async with self._lock:
            queues = self._queues.setdefault(channel, set())
            queues.add(queue)
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
                try:
                    await self._pubsub.subscribe(channel)
                except (RedisError, OSError) as exc:
                    self._forget(channel)
                    raise HubUnavailable(f"Redis pub/sub unavailable: {exc}") from exc
                self._has_channels.set()
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT_S)
        except (TimeoutError, HubUnavailable) as exc:
            await self._remove(channel, queue)
            raise HubUnavailable("Redis did not confirm the subscription") from exc

    async def _remove(self, channel: str, queue: asyncio.Queue[Item]) -> None:
        async with self._lock:
            queues = self._queues.get(channel)
            if queues is None:
                return
            queues.discard(queue)
            if queues:
                return
            self._forget(channel)
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    def _forget(self, channel: str) -> None:
        self._queues.pop(channel, None)
        fut = self._confirmed.pop(channel, None)
        if fut is not None and not fut.done():
            fut.set_exception(HubUnavailable("subscription dropped"))
            fut.exception()  # mark retrieved: nobody else may be waiting

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._has_channels.wait()
                msg = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
                if msg is not None:
                    self._dispatch(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection broke: end every stream, then start over
                log.warning("event hub lost Redis (%s); ending %d streams", exc, len(self._queues))
                self._drop_all(f"lost Redis pub/sub: {exc}")
                await self._reset()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _dispatch(self, msg: dict[str, object]) -> None:
        kind = msg["type"]
        channel = _text(msg["channel"])
        if kind == "message" and channel.startswith(CHANNEL_PREFIX):
            queues = self._queues.get(channel)
            if queues:
                event = decode(msg["data"])  # type: ignore[arg-type]
                for q in queues:
                    q.put_nowait(event)
        elif kind == "subscribe":
            fut = self._confirmed.get(channel)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _drop_all(self, reason: str) -> None:
        down = HubDown(reason)
        for channel, queues in list(self._queues.items()):
            for q in queues:
                q.put_nowait(down)
            self._forget(channel)
        self._has_channels.clear()

    async def _reset(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self._redis.pubsub()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
