"""WatchOrder's algorithm (`follow`) and its fan-out (`EventHub`): one Redis pub/sub connection per server process,
shared by every stream.

`follow` is what one stream does: subscribe, then replay the stored events after `from_seq`, then forward live
events, dropping any `seq` already sent and reading the store for a gap or after `IDLE_RECHECK_S` of silence (a
publish can be lost; the store cannot), until the terminal event. Every read of the store carries the caller's
owner, so a stream never shows another account's events.

The hub holds one pattern subscription to every order's event channel, made when the server starts, so a
stream only registers a queue under its order id: no Redis round trip per stream and nothing to undo but a dict
entry. A stream registers before it replays stored events, so nothing published in between is missed (events
are published after they are committed). Messages for orders nobody here watches are dropped before decoding; the
others are parsed once (they are the protobuf message the streams send, `workers.publisher`) and shared by every
stream of the order.
When the connection drops, every stream is told (`HubDown`) and ends with UNAVAILABLE, so clients resume with
`from_seq`; the hub reconnects by itself, and new streams wait (briefly) until it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from workers.models import Order, OrderEvent
from workers.publisher import CHANNEL_PREFIX, PublishedEvent, decode
from workers.store import OrderNotFound, StoreUnavailable, is_unavailable

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 3.0
# A watcher that hears nothing for this long re-reads the store, in case a publish was lost. The wait doubles (up
# to IDLE_RECHECK_MAX_S) while the order stays silent and is spread at random, so thousands of idle streams do not
# all read PostgreSQL at the same moment; a busy or absent store at a silence re-read is asked again next time.
IDLE_RECHECK_S = 10.0
IDLE_RECHECK_MAX_S = 60.0
# Streams read the store (replay, gap, silence) through at most WATCH_READS pool connections at once: a burst of
# thousands of new streams queues for them, up to WATCH_READ_WAIT_S, instead of failing on the pool's short
# timeout or taking every connection from ExecuteOrder.
WATCH_READS = 12
WATCH_READ_WAIT_S = 30.0
_PATTERN = CHANNEL_PREFIX + "*"
_PREFIX = CHANNEL_PREFIX.encode()


@dataclass(frozen=True, slots=True)
class HubDown:
    reason: str


Item = PublishedEvent | HubDown
# What a stream sends: events read from the store, and live ones as published (their message already built).
Streamed = OrderEvent | PublishedEvent


class HubUnavailable(Exception):
    """Redis cannot be reached: no live events can be promised."""


class WatchInterrupted(Exception):
    """Live events stopped (Redis pub/sub lost or unreachable); the client resumes with `from_seq = last_seq`."""

    def __init__(self, reason: str, last_seq: int) -> None:
        super().__init__(f"{reason}; resume with from_seq={last_seq}")
        self.last_seq = last_seq


class EventSource(Protocol):
    """What `follow` reads: the store (`workers.store.OrderStore`)."""

    async def get_order(self, order_id: str, owner_id: str | None = None) -> Order | None: ...

    async def events_after(self, order_id: str, from_seq: int, owner_id: str | None = None) -> list[OrderEvent]: ...


class LiveEvents(Protocol):
    """Where `follow` hears of new events: `EventHub`."""

    def subscription(self, order_id: str) -> AbstractAsyncContextManager[asyncio.Queue[Item]]: ...


async def follow(
    source: EventSource,
    live_events: LiveEvents,
    order_id: str,
    from_seq: int,
    owner_id: str,
    *,
    idle_recheck_s: float = IDLE_RECHECK_S,
) -> AsyncGenerator[Streamed, None]:
    """The order's events with seq > from_seq, in order, each once, ending after the terminal one.

    Raises OrderNotFound for an order that does not exist or is not `owner_id`'s, WatchInterrupted when live
    events stop. Close it (`contextlib.aclosing`) to let go of its subscription at once.
    """
    last = from_seq
    idle = idle_recheck_s
    if last > 0:  # from the start, the replay below doubles as the existence check (every order has seq 1)
        order = await source.get_order(order_id, owner_id)
        if order is None:
            raise OrderNotFound(order_id)
        if order.status.is_final and last >= order.last_seq:
            return  # the client has seen the terminal event already
    try:
        async with live_events.subscription(order_id) as live:
            # Subscribed first, replayed second: an event published meanwhile is in `live` and deduplicated.
            batch: list[Streamed] = list(await source.events_after(order_id, last, owner_id))
            if last == 0 and not batch:
                raise OrderNotFound(order_id)
            while True:
                for event in batch:
                    yield event
                    last = event.seq
                    if event.is_final:
                        return
                try:
                    item = await asyncio.wait_for(live.get(), idle * random.uniform(1.0, 1.5))
                    idle = idle_recheck_s
                except TimeoutError:
                    item = None
                    idle = min(idle * 2, max(idle_recheck_s, IDLE_RECHECK_MAX_S))
                if isinstance(item, HubDown):
                    raise WatchInterrupted(item.reason, last)
                if item is not None and item.seq == last + 1:
                    batch = [item]
                elif item is not None and item.seq > last:
                    batch = list(await source.events_after(order_id, last, owner_id))  # a gap: fill it from the store
                elif item is None:
                    batch = list(await _silence_read(source, order_id, last, owner_id))
                else:
                    batch = []  # already sent
    except HubUnavailable as exc:
        raise WatchInterrupted(str(exc), last) from None


async def _silence_read(source: EventSource, order_id: str, last: int, owner_id: str) -> list[OrderEvent]:
    """Only a safety net for a lost publish: a store that is busy or down now is asked again at the next silence."""
    try:
        return await source.events_after(order_id, last, owner_id)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return []


class GatedReads:
    """The store as the streams read it: at most WATCH_READS reads at once, each waiting up to WATCH_READ_WAIT_S."""

    def __init__(self, source: EventSource, reads: int = WATCH_READS) -> None:
        self._source = source
        self._gate = asyncio.Semaphore(reads)

    async def get_order(self, order_id: str, owner_id: str | None = None) -> Order | None:
        async with self._turn():
            return await self._source.get_order(order_id, owner_id)

    async def events_after(self, order_id: str, from_seq: int, owner_id: str | None = None) -> list[OrderEvent]:
        async with self._turn():
            return await self._source.events_after(order_id, from_seq, owner_id)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._gate.acquire(), WATCH_READ_WAIT_S)
        except TimeoutError:
            raise StoreUnavailable(f"no connection free for {WATCH_READ_WAIT_S:.0f} s (busy)") from None
        try:
            yield
        finally:
            self._gate.release()


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

    @property
    def backlog(self) -> int:
        """Events heard but not yet sent, over every open stream."""
        return sum(q.qsize() for queues in self._queues.values() for q in queues)

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
            try:
                event = decode(data)
            except Exception as exc:  # not an event (anyone may publish on Redis): the store still has the real ones
                log.warning("event hub: dropped a message on %r that is not an event: %s", channel[:100], exc)
                return
            for q in queues:
                q.put_nowait(event)

    def _drop_all(self, reason: str) -> None:
        down = HubDown(reason)
        for queues in self._queues.values():
            for q in queues:
                q.put_nowait(down)
