"""Keeps an idle market alive: every interval, one small seeded swap on one pool, as an outside trader would make.

Parameters:
  interval_seconds(float): how often the market drifts (MARKET_DRIFT_SECONDS; the worker registers this
    middleware only under `realistic` latency and when it is above 0).
  seed(int): MARKET_SEED; with the interval's number it fixes which pool moves, which way and how far.
  max_move_bps(int): the largest price move of one drift.

Intervals are numbered from the Unix epoch (`floor(time / interval)`) and every worker process wakes at the start
of each one, so all of them pick the same pool, direction and size for it. `OrderStore.drift_pool` then lets only
one of them apply it: it takes a transaction-scoped advisory lock (a worker that finds it taken skips) and skips a
pool that changed since the interval began (the drift of this interval, or a settlement, already moved it). The
interval's start is a timestamp, not a delay, so a worker that wakes late (a busy event loop) cannot drift twice.
Crossing the pool's row lock, a drift serialises with settlements like any other trade.

A drift is a swap of the pool's own math (`pool.swap`), so it keeps every invariant a trade keeps; on a Meteora
pool it first decays the volatility accumulator for the time the pool sat idle (`DlmmPool.tick`). Drifts are not
orders: they write no ledger row, so a replay of the settlements alone matches the pools only with drift off
(as under `MARKET_LATENCY=zero`, which the tests use).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from workers import runtime
from workers.market import DlmmPool, InsufficientLiquidityError, Pool, Token
from workers.middleware.periodic import Periodic
from workers.store import OrderStore

log = logging.getLogger(__name__)

DEFAULT_MAX_MOVE_BPS = 5
# Doublings of the trial amount before a drift gives up on a pool (it then leaves its state as it was).
_MAX_DOUBLINGS = 64


@dataclass(frozen=True, slots=True)
class DriftPlan:
    """What one interval's drift does: sell into `pool_id` until its price has moved `move_bps`."""

    pool_id: str
    sell_x: bool
    move_bps: int


def plan_drift(seed: int, interval: int, pool_ids: list[str], max_move_bps: int = DEFAULT_MAX_MOVE_BPS) -> DriftPlan:
    """The same plan for the same seed and interval in every process (pool ids are taken in sorted order)."""
    if not pool_ids:
        raise ValueError("no pools to drift")
    rng = random.Random(f"drift|{seed}|{interval}")
    return DriftPlan(
        pool_id=rng.choice(sorted(pool_ids)),
        sell_x=rng.random() < 0.5,
        move_bps=rng.randint(1, max(1, max_move_bps)),
    )


def _moved_bps(before: Decimal, after: Decimal) -> Decimal:
    return abs(after / before - 1) * 10_000


def drifted(pool: Pool, plan: DriftPlan, idle_seconds: float) -> Pool:
    """The pool after the plan's swap: the smallest doubling of a trial amount that moves the price far enough.

    A CPMM moves smoothly, so the move is close to `move_bps`. A DLMM price only changes bin by bin, so its
    move is at least one bin step. A pool that cannot be moved (an edge of its bins) is returned as it is.
    """
    if isinstance(pool, DlmmPool):
        pool = pool.tick(int(idle_seconds))
    token_in: Token = pool.token_x if plan.sell_x else pool.token_y
    before = pool.spot_price(pool.token_x)
    x, y = pool.reserves()
    amount = max(1, (x if plan.sell_x else y) * plan.move_bps // 30_000)
    for _ in range(_MAX_DOUBLINGS):
        try:
            result = pool.swap(token_in, amount)
        except InsufficientLiquidityError:
            if pool.quote_out(token_in, amount) is None:  # more than the pool holds: it cannot move further
                return pool
            amount *= 2  # too small to buy a base unit yet
            continue
        after = result.pool_after
        if _moved_bps(before, after.spot_price(after.token_x)) >= plan.move_bps:
            return after
        amount *= 2
    return pool


class MarketDrift(Periodic):
    def __init__(self, *, interval_seconds: float, seed: int, max_move_bps: int = DEFAULT_MAX_MOVE_BPS) -> None:
        super().__init__(interval_seconds=interval_seconds)
        self.seed = seed
        self.max_move_bps = max_move_bps

    def next_delay(self) -> float:
        # Wake at the start of the next interval, as every other worker does.
        return self.interval_seconds - time.time() % self.interval_seconds

    async def tick(self, engine: runtime.Engine) -> None:
        interval = int(time.time() // self.interval_seconds)
        await self.drift(engine.store, interval, list(await engine.venues.pools()))

    async def drift(self, store: OrderStore, interval: int, pool_ids: list[str]) -> Pool | None:
        """Applies this interval's drift unless another process already has; the pool's new state, or None."""
        plan = plan_drift(self.seed, interval, pool_ids, self.max_move_bps)
        after = await store.drift_pool(
            plan.pool_id,
            lambda pool, idle: drifted(pool, plan, idle),
            unchanged_since=datetime.fromtimestamp(interval * self.interval_seconds, UTC),
        )
        if after is not None:
            log.debug("market drift %d: %s moved (%s)", interval, plan.pool_id, "sell x" if plan.sell_x else "sell y")
        return after
