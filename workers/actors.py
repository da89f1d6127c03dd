"""The actors. Importing this module declares them on the broker that `workers.worker` set up."""

from __future__ import annotations

import dramatiq

from workers import pipeline, runtime, triggers
from workers.domain import OrderFailure
from workers.queue import ACTOR_NAME, BATCH_ACTOR_NAME, EXPIRE_ACTOR, POOLS_MOVED_ACTOR, QUEUE_NAME, TRIGGER_QUEUE_NAME


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, throws=(OrderFailure,), time_limit=120_000)
async def advance_order(order_id: str) -> None:
    """Takes the order as far as it can go now; see `workers.pipeline`."""
    await pipeline.advance(runtime.current(), order_id)


@dramatiq.actor(actor_name=BATCH_ACTOR_NAME, queue_name=QUEUE_NAME, time_limit=120_000)
async def advance_orders(order_ids: list[str]) -> None:
    """Orders due at about the same time (`workers.revisits`), each taken as far as `advance_order` would."""
    await pipeline.advance_many(runtime.current(), order_ids)


@dramatiq.actor(actor_name=POOLS_MOVED_ACTOR, queue_name=TRIGGER_QUEUE_NAME, time_limit=120_000)
async def pools_moved(pool_ids: list[str] | None) -> None:
    """Fires the resting orders these pools' new prices made reachable; see `workers.triggers`."""
    await triggers.on_pools_moved(runtime.current(), pool_ids)


@dramatiq.actor(actor_name=EXPIRE_ACTOR, queue_name=TRIGGER_QUEUE_NAME, time_limit=60_000)
async def expire_order(order_id: str) -> None:
    """Expires the order if it is still waiting at its expires_at."""
    await triggers.expire(runtime.current(), order_id)
