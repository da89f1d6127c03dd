"""How `Revisits` groups orders due at about the same time into one message (the grouping is pure logic: the queue
here records what it is asked to send; tests/integration/test_queue.py sends for real)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from workers.revisits import Revisits


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[list[str], int]] = []
        self.entered = asyncio.Event()  # a send is under way
        self.release = asyncio.Event()  # sends may finish
        self.release.set()
        self.error: Exception | None = None

    async def enqueue_many_async(self, order_ids: Sequence[str], delay_ms: int) -> None:
        self.entered.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        self.sent.append((list(order_ids), delay_ms))


def _in(ms: int) -> datetime:
    return datetime.now(UTC) + timedelta(milliseconds=ms)


def _revisits(queue: RecordingQueue, **options: int) -> Revisits:
    return Revisits(queue, **options)  # type: ignore[arg-type]  # only enqueue_many_async is used


async def test_orders_due_in_the_same_bucket_share_one_message_due_at_its_end() -> None:
    queue = RecordingQueue()
    revisits = _revisits(queue, bucket_ms=1_000, collect_ms=10)
    # Whole seconds from now on: both fall in the same 1 s bucket, whatever the clock's milliseconds.
    bucket_end = (int(time.time()) + 3) * 1000
    due = [datetime.fromtimestamp((bucket_end - d) / 1000, UTC) for d in (900, 100)]
    await asyncio.gather(revisits.at("a", due[0]), revisits.at("b", due[1]))
    assert [ids for ids, _ in queue.sent] == [["a", "b"]]
    delay = queue.sent[0][1]
    # Due at the bucket's end: never before the later order is due, at most a bucket after the earlier one.
    assert bucket_end - 100 - time.time() * 1000 <= delay <= bucket_end - time.time() * 1000 + 50
    assert (revisits.messages, revisits.orders) == (1, 2)


async def test_orders_due_in_different_buckets_get_a_message_each() -> None:
    queue = RecordingQueue()
    revisits = _revisits(queue, bucket_ms=100, collect_ms=10)
    await asyncio.gather(revisits.at("soon", _in(200)), revisits.at("later", _in(900)))
    assert sorted(ids for ids, _ in queue.sent) == [["later"], ["soon"]]
    delays = dict((ids[0], delay) for ids, delay in queue.sent)
    assert 100 <= delays["soon"] <= 310 and 800 <= delays["later"] <= 1_010


async def test_the_call_returns_only_once_the_message_is_sent() -> None:
    queue = RecordingQueue()
    queue.release.clear()
    revisits = _revisits(queue, collect_ms=1)
    waiting = asyncio.create_task(revisits.at("a", _in(500)))
    await queue.entered.wait()  # the send is under way, held by the queue
    await asyncio.sleep(0)
    assert not waiting.done() and queue.sent == []
    queue.release.set()
    await waiting
    assert queue.sent and queue.sent[0][0] == ["a"]


async def test_a_full_group_is_sent_without_waiting_for_its_window() -> None:
    queue = RecordingQueue()
    revisits = _revisits(queue, bucket_ms=60_000, collect_ms=60_000, max_batch=3)
    due = _in(1_000)
    await asyncio.wait_for(asyncio.gather(*(revisits.at(i, due) for i in "abc")), timeout=5)
    assert [ids for ids, _ in queue.sent] == [["a", "b", "c"]]


async def test_every_order_of_a_message_that_could_not_be_sent_gets_the_error() -> None:
    queue = RecordingQueue()
    queue.error = ConnectionError("Redis is down")
    revisits = _revisits(queue, collect_ms=5)
    due = _in(300)
    results = await asyncio.gather(revisits.at("a", due), revisits.at("b", due), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    # The next request starts a new group, sent once the broker is back.
    queue.error = None
    await revisits.at("c", due)
    assert queue.sent[-1][0] == ["c"]


async def test_a_cancelled_caller_does_not_take_the_message_from_the_others() -> None:
    queue = RecordingQueue()
    queue.release.clear()
    revisits = _revisits(queue, collect_ms=1)
    due = _in(400)
    leaving = asyncio.create_task(revisits.at("a", due))
    staying = asyncio.create_task(revisits.at("b", due))
    await queue.entered.wait()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    queue.release.set()
    await staying
    assert queue.sent[0][0] == ["a", "b"]
