"""Re-drives orders that stopped moving, for when a broker message vanished.

Parameters:
  idle_seconds(float): how long a non-final order may go without a transition before it is re-enqueued; longer
    than any stage legitimately takes (backoff, confirmation, blockhash expiry).
  interval_seconds(float): how often each worker process looks.

A message can vanish when Redis loses its data, or when a process dies between committing an order and
enqueueing it. Every actor is idempotent, so a re-drive of an order that was merely slow is harmless, and
`OrderStore.stale_orders` claims each order for one reconciler at a time, so many can run at once.
Resting (`open`) orders are idle by design: for them the safety net is `triggers.sweep` (expire what a lost
expiry message left, fire what a lost "pools moved" message left waiting), whose guarded transitions make
overlapping sweeps harmless.
"""

from __future__ import annotations

import logging

from workers import runtime, triggers
from workers.middleware.periodic import Periodic

log = logging.getLogger(__name__)


class Reconciler(Periodic):
    def __init__(self, *, idle_seconds: float, interval_seconds: float) -> None:
        super().__init__(interval_seconds=interval_seconds)
        self.idle_seconds = idle_seconds

    async def tick(self, engine: runtime.Engine) -> None:
        await self.sweep(engine)
        expired, fired = await triggers.sweep(engine)
        if expired or fired:
            log.warning("reconciler expired %d overdue and fired %d missed resting orders", expired, fired)

    async def sweep(self, engine: runtime.Engine) -> int:
        ids = await engine.store.stale_orders(self.idle_seconds)
        for order_id in ids:
            await engine.queue.enqueue_async(order_id)
        if ids:
            log.warning("reconciler re-drove %d stalled orders", len(ids))
        return len(ids)
