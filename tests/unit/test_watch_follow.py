"""WatchOrder's algorithm (`server.watch.follow`) on its own: its store and its live events are in-memory fakes.

The fakes stand for the two inputs only; the real store and hub are covered in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime

import pytest

from server.watch import HubDown, HubUnavailable, Item, WatchInterrupted, follow
from workers.domain import DEFAULT_OWNER, OrderStatus, OrderType
from workers.models import Order, OrderEvent
from workers.publisher import PublishedEvent, decode, encode
from workers.store import OrderNotFound

ORDER = "00000000-0000-0000-0000-000000000001"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STORY = [
    OrderStatus.PENDING,
    OrderStatus.ROUTING,
    OrderStatus.BUILDING,
    OrderStatus.SUBMITTED,
    OrderStatus.CONFIRMED,
]


def ev(seq: int) -> OrderEvent:
    return OrderEvent(order_id=ORDER, seq=seq, status=STORY[seq - 1], attempt=1, time=T0)


def live(seq: int) -> PublishedEvent:
    """The event as the hub hears it: through the bytes the event path publishes."""
    return decode(encode(ev(seq)))


class Store:
    """The stored history: `stored` events of STORY, owned by DEFAULT_OWNER. Records every read's owner."""

    def __init__(self, stored: int, on_read: Callable[[int], None] | None = None) -> None:
        self.stored = stored
        self.owners: list[str | None] = []
        self.reads: list[int] = []
        self.on_read = on_read

    async def get_order(self, order_id: str, owner_id: str | None = None) -> Order | None:
        self.owners.append(owner_id)
        if order_id != ORDER or owner_id not in (None, DEFAULT_OWNER) or not self.stored:
            return None
        status = STORY[self.stored - 1]
        return Order(ORDER, DEFAULT_OWNER, OrderType.MARKET, "SOL", "USDC", 1, 50, status, 1, self.stored, T0, T0)

    async def events_after(self, order_id: str, from_seq: int, owner_id: str | None = None) -> list[OrderEvent]:
        self.owners.append(owner_id)
        self.reads.append(from_seq)
        if self.on_read is not None:
            self.on_read(from_seq)
        if order_id != ORDER or owner_id not in (None, DEFAULT_OWNER):  # None reads unfiltered, as the store does
            return []
        return [ev(s) for s in range(from_seq + 1, self.stored + 1)]


class Hub:
    """Live events: what the test puts in `queue` is what the stream hears."""

    def __init__(self, unavailable: bool = False) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.unavailable = unavailable
        self.subscribed = 0

    @asynccontextmanager
    async def subscription(self, order_id: str) -> AsyncIterator[asyncio.Queue[Item]]:
        if self.unavailable:
            raise HubUnavailable("Redis pub/sub is unavailable")
        self.subscribed += 1
        try:
            yield self.queue
        finally:
            self.subscribed -= 1


async def collect(store: Store, hub: Hub, from_seq: int = 0, owner: str = DEFAULT_OWNER) -> list[int]:
    async with aclosing(follow(store, hub, ORDER, from_seq, owner, idle_recheck_s=0.01)) as events:
        return [e.seq async for e in events]


async def test_replay_then_live_drops_what_was_published_during_the_replay() -> None:
    hub = Hub()
    store = Store(stored=2)

    def published_meanwhile(from_seq: int) -> None:
        if from_seq == 0:  # seq 2 was committed and published between subscribe and replay
            hub.queue.put_nowait(live(2))
            hub.queue.put_nowait(live(3))
            hub.queue.put_nowait(live(3))  # a repeat
            hub.queue.put_nowait(live(4))
            hub.queue.put_nowait(live(5))

    store.on_read = published_meanwhile
    assert await collect(store, hub) == [1, 2, 3, 4, 5]
    assert store.reads == [0]  # every live event came in order: no extra store read
    assert hub.subscribed == 0


async def test_a_gap_in_live_events_is_filled_from_the_store() -> None:
    hub = Hub()
    store = Store(stored=2)
    hub.queue.put_nowait(live(5))  # 3 and 4 were not heard (a lost publish)
    store.on_read = lambda from_seq: setattr(store, "stored", 5) if from_seq == 2 else None
    assert await collect(store, hub) == [1, 2, 3, 4, 5]
    assert store.reads == [0, 2]


async def test_silence_re_reads_the_store() -> None:
    hub = Hub()
    store = Store(stored=3)

    def lands_later(from_seq: int) -> None:
        if len(store.reads) == 3:  # the second silent interval: the rest is stored, its publishes were lost
            store.stored = 5

    store.on_read = lands_later
    assert await collect(store, hub) == [1, 2, 3, 4, 5]
    assert store.reads == [0, 3, 3]


async def test_resuming_after_the_terminal_event_sends_nothing_and_subscribes_nowhere() -> None:
    hub = Hub()
    assert await collect(Store(stored=5), hub, from_seq=5) == []
    assert await collect(Store(stored=5), hub, from_seq=3) == [4, 5]


@pytest.mark.parametrize("from_seq", [0, 2])
async def test_unknown_or_someone_elses_order_is_not_found(from_seq: int) -> None:
    with pytest.raises(OrderNotFound):
        await collect(Store(stored=0), Hub(), from_seq=from_seq)
    store = Store(stored=3)
    with pytest.raises(OrderNotFound):
        await collect(store, Hub(), from_seq=from_seq, owner="mallory")
    assert set(store.owners) == {"mallory"}


async def test_every_store_read_carries_the_owner_gap_fills_included() -> None:
    hub = Hub()
    store = Store(stored=1)
    hub.queue.put_nowait(live(3))  # a gap
    store.on_read = lambda from_seq: setattr(store, "stored", 5) if from_seq == 1 else None
    assert await collect(store, hub) == [1, 2, 3, 4, 5]
    assert store.reads == [0, 1] and set(store.owners) == {DEFAULT_OWNER}


async def test_lost_live_events_interrupt_the_stream_with_where_to_resume() -> None:
    hub = Hub()
    hub.queue.put_nowait(HubDown("lost Redis pub/sub: reset"))
    with pytest.raises(WatchInterrupted, match="resume with from_seq=2") as err:
        await collect(Store(stored=2), hub)
    assert err.value.last_seq == 2
    with pytest.raises(WatchInterrupted, match="resume with from_seq=1"):
        await collect(Store(stored=3), Hub(unavailable=True), from_seq=1)


async def test_closing_the_stream_lets_go_of_its_subscription() -> None:
    hub = Hub()
    events = follow(Store(stored=2), hub, ORDER, 0, DEFAULT_OWNER, idle_recheck_s=60)
    assert (await anext(events)).seq == 1
    assert hub.subscribed == 1
    await events.aclose()
    assert hub.subscribed == 0
