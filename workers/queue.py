"""Handing an order to the workers: one Dramatiq message naming the order, optionally delayed.

`OrderQueue` is what the engine and the server ask for; `BrokerQueue` is its one implementation. It sends through
the broker's public `enqueue`, whichever broker it is (Redis, or RabbitMQ with `BROKER_URL=amqp://...`), so
every message passes the broker's `before_enqueue`/`after_enqueue` hooks: middleware such as Prometheus or tracing
sees the server's enqueues as well as the workers'. The message is the one `advance_order` consumes, built here so
the server need not import the actors.

Dramatiq's brokers are blocking clients, so from async code the enqueue runs on a small pool of threads of its own:
the event loop (grpc.aio's, or Dramatiq's event-loop thread in a worker) never waits on the broker, and a burst of
enqueues cannot starve the loop's default executor. BENCHMARKS.md measures what the thread hop costs. The pool is
also what makes RabbitMQ safe here: pika's connections are not thread-safe, and Dramatiq's RabbitmqBroker keeps one
connection per thread, so each enqueue thread publishes on its own connection and never shares one with the
worker's threads or another enqueue thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import dramatiq

QUEUE_NAME = "orders"
ACTOR_NAME = "advance_order"
# Several orders due at about the same time, in one message (`workers/revisits.py`).
BATCH_ACTOR_NAME = "advance_orders"
# The trigger engine's messages get a queue of their own, so a burst of orders never delays a trigger.
TRIGGER_QUEUE_NAME = "triggers"
POOLS_MOVED_ACTOR = "pools_moved"
EXPIRE_ACTOR = "expire_order"
# Enough for a burst of ExecuteOrder calls to keep the broker busy; each thread holds at most one connection.
ENQUEUE_THREADS = 8


def message_for(order_id: str) -> dramatiq.Message[None]:
    return dramatiq.Message(queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(order_id,), kwargs={}, options={})


def orders_message(order_ids: Sequence[str]) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=QUEUE_NAME, actor_name=BATCH_ACTOR_NAME, args=(list(order_ids),), kwargs={}, options={}
    )


def pools_moved_message(pool_ids: Sequence[str] | None) -> dramatiq.Message[None]:
    """None means every pool: the reconciler's sweep."""
    args = (list(pool_ids) if pool_ids is not None else None,)
    return dramatiq.Message(
        queue_name=TRIGGER_QUEUE_NAME, actor_name=POOLS_MOVED_ACTOR, args=args, kwargs={}, options={}
    )


def expire_message(order_id: str) -> dramatiq.Message[None]:
    return dramatiq.Message(
        queue_name=TRIGGER_QUEUE_NAME, actor_name=EXPIRE_ACTOR, args=(order_id,), kwargs={}, options={}
    )


class OrderQueue(Protocol):
    broker_name: str  # "Redis" or "RabbitMQ": what an UNAVAILABLE answer names

    def enqueue(self, order_id: str, delay_ms: int = 0) -> None:
        """Sends the order's message now, or to be delivered after `delay_ms`; blocks until the broker has it."""

    async def enqueue_async(self, order_id: str, delay_ms: int = 0) -> None:
        """The same, without blocking the event loop."""

    async def enqueue_many_async(self, order_ids: Sequence[str], delay_ms: int) -> None:
        """One message for all these orders, delivered after `delay_ms`; each is advanced as `enqueue` would."""

    async def pools_moved_async(self, pool_ids: Sequence[str] | None) -> None:
        """Tells the trigger engine these pools moved (committed); None: look at every pool."""

    async def expire_async(self, order_id: str, delay_ms: int) -> None:
        """Asks for the order's expiry to be applied after `delay_ms` (a delayed message: nothing sleeps)."""

    def close(self) -> None: ...


class BrokerQueue:
    """Parameters:
    broker(dramatiq.Broker): any Dramatiq broker; only its public `enqueue` is used.
    threads(int): the enqueue threads for `enqueue_async`.
    broker_name(str): what the broker is, for error messages.
    """

    def __init__(self, broker: dramatiq.Broker, *, threads: int = ENQUEUE_THREADS, broker_name: str = "Redis") -> None:
        self._broker = broker
        self.broker_name = broker_name
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="enqueue")

    def enqueue(self, order_id: str, delay_ms: int = 0) -> None:
        self._broker.enqueue(message_for(order_id), delay=delay_ms if delay_ms > 0 else None)

    async def enqueue_async(self, order_id: str, delay_ms: int = 0) -> None:
        # In the caller's context (as asyncio.to_thread does): middleware reads the current trace from it.
        send = functools.partial(contextvars.copy_context().run, self.enqueue, order_id, delay_ms)
        await asyncio.get_running_loop().run_in_executor(self._executor, send)

    async def enqueue_many_async(self, order_ids: Sequence[str], delay_ms: int) -> None:
        await self._send_async(orders_message(order_ids), delay_ms)

    async def pools_moved_async(self, pool_ids: Sequence[str] | None) -> None:
        await self._send_async(pools_moved_message(pool_ids), 0)

    async def expire_async(self, order_id: str, delay_ms: int) -> None:
        await self._send_async(expire_message(order_id), delay_ms)

    async def _send_async(self, message: dramatiq.Message[None], delay_ms: int) -> None:
        def send() -> None:
            self._broker.enqueue(message, delay=delay_ms if delay_ms > 0 else None)

        await asyncio.get_running_loop().run_in_executor(self._executor, send)

    def close(self) -> None:
        self._executor.shutdown(wait=False)
