"""The order actor. Importing this module declares it on the broker that `workers.worker` set up."""

from __future__ import annotations

import dramatiq

from workers import pipeline, runtime
from workers.domain import OrderFailure
from workers.queue import ACTOR_NAME, QUEUE_NAME


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, throws=(OrderFailure,), time_limit=120_000)
async def advance_order(order_id: str) -> None:
    """Takes the order as far as it can go now; see `workers.pipeline`."""
    await pipeline.advance(runtime.current(), order_id)
