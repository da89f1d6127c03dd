"""Revisits: the orders of one process that are due at about the same time share one delayed message.

A submitted order has nothing to do until its transaction lands a few slots later (`workers.chain`). One delayed
Dramatiq message per order cost a worker more CPU than the rest of the order: Redis keeps delayed messages in a
queue of their own, so each one is enqueued, fetched, enqueued again when due and acked twice, and it is one more
message through the worker's threads (BENCHMARKS.md measures it). Here an order asks to be looked at again at
`due`; the requests whose due times fall in the same `bucket_ms` share one `advance_orders` message, due at the
end of that bucket, so an order is looked at up to `bucket_ms` late, never early.

A request waits at most `collect_ms` for others to join its message, and `at` returns only once the broker holds
that message: a worker that dies after its message was acked has lost nothing. Every request of a message that
could not be sent gets the error, as a lone enqueue would raise it.

Parameters:
queue(OrderQueue): where the messages go.
bucket_ms(int): due times are grouped by this interval, and rounded up to its end.
collect_ms(int): how long the first request of a group waits for others before the group's message is sent.
max_batch(int): at most this many orders per message; a full group is sent at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

from workers.queue import OrderQueue

BUCKET_MS = 100
COLLECT_MS = 25
MAX_BATCH = 256


@dataclass
class _Group:
    due_ms: int  # the bucket's end, in ms since the epoch
    sent: asyncio.Future[None]  # done once the broker holds the group's message
    order_ids: list[str] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Revisits:
    def __init__(
        self,
        queue: OrderQueue,
        *,
        bucket_ms: int = BUCKET_MS,
        collect_ms: int = COLLECT_MS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._queue = queue
        self._bucket_ms = bucket_ms
        self._collect_s = collect_ms / 1000
        self._max_batch = max_batch
        self._groups: dict[int, _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.messages = 0  # messages sent and orders in them, for tests and benchmarks
        self.orders = 0

    async def at(self, order_id: str, due: datetime) -> None:
        """Has the order advanced again at `due` (or up to `bucket_ms` later); returns once that is in the broker."""
        due_ms = math.ceil(due.timestamp() * 1000 / self._bucket_ms) * self._bucket_ms
        group = self._groups.get(due_ms)
        if group is None:
            loop = asyncio.get_running_loop()
            group = self._groups[due_ms] = _Group(due_ms, sent=loop.create_future())
            # Read here, so an error that every cancelled caller left behind is not logged as never retrieved.
            group.sent.add_done_callback(lambda f: f.cancelled() or f.exception())
            group.timer = loop.call_later(self._collect_s, self._send, group)
        group.order_ids.append(order_id)
        if len(group.order_ids) >= self._max_batch:
            self._send(group)
        # Shielded: a caller cancelled while it waits does not take the message away from the others.
        await asyncio.shield(group.sent)

    def _send(self, group: _Group) -> None:
        if self._groups.get(group.due_ms) is not group:
            return  # sent already (full before its timer fired)
        del self._groups[group.due_ms]
        if group.timer is not None:
            group.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._deliver(group), name="revisits-send")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, group: _Group) -> None:
        delay_ms = max(1, group.due_ms - int(time.time() * 1000))
        try:
            await self._queue.enqueue_many_async(group.order_ids, delay_ms)
        except asyncio.CancelledError:  # the loop is shutting down: no caller is left waiting forever
            group.sent.cancel()
            raise
        except Exception as exc:
            group.sent.set_exception(exc)
            return
        self.messages += 1
        self.orders += len(group.order_ids)
        group.sent.set_result(None)
