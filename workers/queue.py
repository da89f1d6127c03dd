"""Handing an order to the workers: one Dramatiq message naming the order, optionally delayed.

The server enqueues through this without importing the actors; the message is the same one `advance_order`
consumes.
"""

from __future__ import annotations

import asyncio

import dramatiq

QUEUE_NAME = "orders"
ACTOR_NAME = "advance_order"


def message_for(order_id: str) -> dramatiq.Message[None]:
    return dramatiq.Message(queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(order_id,), kwargs={}, options={})


class OrderQueue:
    def __init__(self, broker: dramatiq.Broker) -> None:
        self._broker = broker

    def enqueue(self, order_id: str, delay_ms: int = 0) -> None:
        self._broker.enqueue(message_for(order_id), delay=delay_ms if delay_ms > 0 else None)

    async def enqueue_async(self, order_id: str, delay_ms: int = 0) -> None:
        # The broker's client is synchronous; a thread keeps the event loop free while Redis answers.
        await asyncio.to_thread(self.enqueue, order_id, delay_ms)
