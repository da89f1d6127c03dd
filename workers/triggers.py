"""The trigger engine: resting orders fire when the pools make their price reachable, and expire on time.

    a pool moves (settlement, drift, launch), committed       workers/store.py -> EventSink.pools_moved
         (only when some order rests: OrderStore._any_open)
      -> one "pools moved" message (queue `triggers`)          workers/queue.py
      -> `on_pools_moved`: the directions open orders wait on (OrderStore.open_directions), and the best price
         of each that the moved pools take part in (workers/limits.py),
         one index range scan for the open orders at or under it (OrderStore.reachable_candidates),
         the exact check of each for its whole amount (the router, splits included),
         then `fire`: the guarded `open -> routing` (TRIGGER) and the order's message.

Work per move is in proportion to the orders whose limit the best price passes, never to all resting orders: the
message goes out only when some order rests (`OrderStore._any_open`, asked after the move's commit), and the bounds
are computed only for the directions open orders wait on (`OrderStore.open_directions`).
`fire` is the one guarded transition a cancel and an expiry race with: whichever commits first moves the order,
the others find it gone from `open` and change nothing, and its history shows which won. A trigger committed by a
worker that dies before enqueueing leaves the order in `routing`, which the reconciler re-drives.

Expiry is a delayed message at `expires_at` (`expire`), guarded in SQL by the expiry time; the reconciler expires
what a lost message left behind and sweeps every direction now and then for a lost "pools moved".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from workers.domain import LifecycleEvent, OrderStatus
from workers.limits import direction_bounds, limit_min_out
from workers.market import InsufficientLiquidityError, NoRouteError, Pool, UnknownTokenError, best_route, resolve_token
from workers.models import Order
from workers.runtime import Engine

log = logging.getLogger(__name__)

FIRE_CONCURRENCY = 8


def reachable(order: Order, pools: Mapping[str, Pool]) -> bool:
    """The best route for the order's whole amount returns at least its limit (any route, for an uncapped
    sniper), on the pools as given."""
    try:
        token_in, token_out = resolve_token(order.token_in), resolve_token(order.token_out)
        route = best_route(list(pools.values()), token_in, token_out, order.amount_in)
    except (UnknownTokenError, NoRouteError, InsufficientLiquidityError):
        return False  # a sniper's token not listed yet, or no pool deep enough: not yet
    if order.limit_price is None:
        return True
    return route.amount_out >= limit_min_out(order.amount_in, token_in, token_out, order.limit_price)


async def fire(engine: Engine, order: Order) -> bool:
    """open -> routing, then the order's message, due when the venues have answered its quote request (sent now);
    False when a cancel, an expiry or another trigger won."""
    event = await engine.store.transition(order.id, LifecycleEvent.TRIGGER, attempt=order.attempt)
    if event is None:
        return False
    await engine.queue.enqueue_async(
        order.id, engine.venues.quote_wait_ms(order.id, event.attempt, asked_at=event.time)
    )
    return True


async def on_pools_moved(engine: Engine, pool_ids: Sequence[str] | None) -> int:
    """Fires every open order the moved pools made reachable; how many fired."""
    # The directions some order waits on first (none: nothing to do), then their bounds only: the work follows
    # the resting orders, not the size of the market. An order that rests after this read looks at the pools
    # itself once committed (`check_now`), after the move, so it misses nothing.
    directions = await engine.store.open_directions()
    if not directions:
        return 0
    pools = await engine.venues.pools()
    moved = None if pool_ids is None else set(pool_ids)
    bounds = [
        (tin.mint, tout.mint, bound) for tin, tout, bound in direction_bounds(list(pools.values()), moved, directions)
    ]
    due = [order for order in await engine.store.reachable_candidates(bounds) if reachable(order, pools)]
    # Fired a few at a time: each is a round trip to PostgreSQL and one to the broker, and a launch may make
    # hundreds of snipers due at once; the store's pool bounds how many run together anyway.
    gate = asyncio.Semaphore(FIRE_CONCURRENCY)

    async def fire_one(order: Order) -> bool:
        async with gate:
            return await fire(engine, order)

    fired = sum(await asyncio.gather(*(fire_one(order) for order in due)))
    if fired:
        log.info(
            "trigger: %d resting orders fired after %s moved", fired, "every pool" if pool_ids is None else pool_ids
        )
    return fired


async def check_now(engine: Engine, order: Order) -> bool:
    """Just rested: fires the order at once if the pools already reach its price (no move may ever come)."""
    return reachable(order, await engine.venues.pools()) and await fire(engine, order)


async def expire(engine: Engine, order_id: str) -> None:
    """The delayed expiry message: applies `expire` if the order still waits; an early message waits again."""
    order = await engine.store.get_order(order_id)
    if order is None or order.expires_at is None or order.status not in (OrderStatus.OPEN, OrderStatus.PENDING):
        return
    left_ms = int((order.expires_at - datetime.now(UTC)).total_seconds() * 1000)
    if left_ms > 0:
        await engine.queue.expire_async(order_id, left_ms)
        return
    await engine.store.transition(order_id, LifecycleEvent.EXPIRE)


async def sweep(engine: Engine) -> tuple[int, int]:
    """The reconciler's safety net: expires overdue open orders, fires what a lost "pools moved" left waiting."""
    expired = 0
    for order_id in await engine.store.overdue_open():
        if await engine.store.transition(order_id, LifecycleEvent.EXPIRE) is not None:
            expired += 1
    return expired, await on_pools_moved(engine, None)
