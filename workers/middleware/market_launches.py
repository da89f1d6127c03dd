"""Under `realistic` latency the market lists a new token now and then by itself, as launchpads graduate tokens.

Parameters:
  interval_seconds(float): MARKET_LAUNCH_SECONDS (the worker registers this middleware only under `realistic`
    latency and when it is above 0).
  seed(int): MARKET_SEED; with the interval's number it fixes the token (mint, symbol) and its opening price.

As with the drift, intervals are numbered from the Unix epoch and every worker process plans the same launch for
one; `OrderStore.launch` inserts the token and its pool in one transaction that only the first process succeeds in
(the mint is the tokens table's key), so each interval launches once whatever the number of workers. The launch is
a pool move like any other: the trigger engine fires the snipers waiting on that mint.
"""

from __future__ import annotations

import logging
import time

from workers import runtime
from workers.market import SOL
from workers.market.launch import DEFAULT_LIQUIDITY, launch_pool, planned_launch
from workers.middleware.periodic import Periodic

log = logging.getLogger(__name__)


class MarketLaunches(Periodic):
    def __init__(self, *, interval_seconds: float, seed: int) -> None:
        super().__init__(interval_seconds=interval_seconds)
        self.seed = seed

    def next_delay(self) -> float:
        return self.interval_seconds - time.time() % self.interval_seconds

    async def tick(self, engine: runtime.Engine) -> None:
        interval = int(time.time() // self.interval_seconds)
        token, price = planned_launch(self.seed, interval)
        if await engine.store.launch(token, launch_pool(token, SOL, price, DEFAULT_LIQUIDITY)):
            log.info("market launch %d: %s (%s) at %s SOL", interval, token.symbol, token.mint, price)
