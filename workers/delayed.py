"""Delayed messages that come due in the worker process holding them run there, without a second trip through
the broker.

Dramatiq's consumer of a delay queue (`orders.DQ`) holds each delayed message, unacked, until its eta; then it
enqueues a copy on the message's queue (`orders`) and acks the original, and some worker fetches, runs and acks
the copy. Under venue latency every order makes two such hops (its quote, its landing), and each costs an enqueue,
a fetch and an ack more than the message needs: Python in the worker, scripts in Redis (`BENCHMARKS.md`).

`DueHereConsumer` puts a due message straight on its own process's work queue instead, unless the process is
far behind (`DUE_HERE_ROOM`). The message stays unacked on the delay queue until a worker thread has run it, and
is acked there: a worker that dies first has it delivered again as it would any message it held (Redis: the
heartbeat requeue; RabbitMQ: the closed channel), and one that stops puts it back on the delay queue, due at once.
A process far behind sends the message Dramatiq's way, through the broker, so another worker process can take it.
While it runs the message keeps its delay queue's name (metrics label it `orders.DQ`): that is where its ack goes.

This leans on two names Dramatiq does not document, `Worker._add_consumer` and the work queue's item type;
`tests/integration/test_delayed_here.py` fails if either changes under a Dramatiq upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from queue import Empty
from typing import Any

import dramatiq
from dramatiq.common import current_millis, q_name
from dramatiq.errors import ActorNotFound
from dramatiq.worker import ConsumerThread, _WorkQueueItem

# Due messages a process keeps while its work queue is shorter than this. The delay queues' consumers of all the
# worker processes fetch in turn, so each holds a fair share of what is due; past this depth (seconds of work for
# one process) the process is far behind the others, and the broker lets one of them take the message.
DUE_HERE_ROOM = 256


class DueHereConsumer(ConsumerThread):
    """A consumer thread whose due delayed messages run in this process while its work queue is under `room`."""

    def __init__(self, *, room: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.room = room
        self.ran_here = 0  # due messages put on this process's work queue (read by tests)
        self.passed_on = 0  # due messages sent through the broker, as Dramatiq does

    def handle_delayed_messages(self) -> None:
        while self.work_queue.qsize() < self.room:
            try:
                item = self.delay_queue.get_nowait()
            except Empty:
                return
            due = item.priority <= current_millis()  # the delay queue is ordered by eta: if not, nothing is
            actor = self._actor_of(item.message) if due else None
            if actor is None:
                self.delay_queue.put(item)
                self.delay_queue.task_done()
                if not due:
                    return
                break  # an actor this process lacks: Dramatiq's way sends it to a consumer that dead-letters it
            self.work_queue.put(_WorkQueueItem(actor.priority, item.message))
            self.ran_here += 1
            self.delay_queue.task_done()
        # Far behind: whatever else is due goes through the broker, as Dramatiq sends it.
        held = self.delay_queue.qsize()
        super().handle_delayed_messages()
        self.passed_on += held - self.delay_queue.qsize()

    def _actor_of(self, message: dramatiq.MessageProxy) -> dramatiq.Actor[Any, Any] | None:
        try:
            return self.broker.get_actor(message.actor_name)
        except ActorNotFound:
            return None


class DueHereWorker(dramatiq.Worker):
    """Dramatiq's worker, with `DueHereConsumer` on its delay queues (its other consumers are Dramatiq's).

    Parameters (besides Dramatiq's):
    room(int): how deep this process's work queue may be for a due message to join it (else: through the broker).
    poll_ms(Mapping[str, int]): a delay queue's own poll when idle, in place of `worker_timeout`. A delay queue's
      consumer holds every message it fetched and looks at their etas each time it polls, so this is both how soon
      it holds a new delayed message and how late after its eta one may run.
    """

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        room: int = DUE_HERE_ROOM,
        poll_ms: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(broker, **kwargs)
        self.room = room
        self.poll_ms = dict(poll_ms or {})

    def _add_consumer(self, queue_name: str, *, delay: bool = False) -> None:
        if not delay:
            super()._add_consumer(queue_name)
            return
        if queue_name in self.consumers:
            return
        if self.consumer_whitelist and q_name(queue_name) not in self.consumer_whitelist:
            return
        consumer = self.consumers[queue_name] = DueHereConsumer(
            room=self.room,
            broker=self.broker,
            queue_name=queue_name,
            prefetch=self.delay_prefetch,
            work_queue=self.work_queue,
            worker_timeout=self.poll_ms.get(queue_name, self.worker_timeout),
        )
        consumer.start()
