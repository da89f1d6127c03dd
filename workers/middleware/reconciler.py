"""Re-drives orders that stopped moving, for when a broker message vanished.

Parameters:
  idle_seconds(float): how long a non-final order may go without a transition before it is re-enqueued; longer
    than any stage legitimately takes (backoff, confirmation, blockhash expiry).
  interval_seconds(float): how often each worker process looks.

A message can vanish when Redis loses its data, or when a process dies between committing an order and
enqueueing it. Every actor is idempotent, so a re-drive of an order that was merely slow is harmless, and
`OrderStore.stale_orders` claims each order for one reconciler at a time, so many can run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from workers import runtime

log = logging.getLogger(__name__)


class Reconciler(dramatiq.Middleware):
    def __init__(self, *, idle_seconds: float, interval_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.interval_seconds = interval_seconds
        self._task: asyncio.Future[None] | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        self._task = asyncio.run_coroutine_threadsafe(self._run(), loop_thread.loop)  # type: ignore[assignment]

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            with contextlib.suppress(Exception):
                await self.sweep(runtime.current())

    async def sweep(self, engine: runtime.Engine) -> int:
        ids = await engine.store.stale_orders(self.idle_seconds)
        for order_id in ids:
            await engine.queue.enqueue_async(order_id)
        if ids:
            log.warning("reconciler re-drove %d stalled orders", len(ids))
        return len(ids)
