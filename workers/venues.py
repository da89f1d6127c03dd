"""The venues as the engine reaches them: network latency and seeded failures around the market's pure math.

The math (pools, quotes, routes) is in `workers.market`; this module adds what talking to a DEX costs: a quote
takes ~200 ms under `realistic` latency (awaited, never slept on a thread) and fails at MARKET_FAILURE_RATE.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workers import faults
from workers.domain import ErrorCode, PermanentFailure, TransientFailure
from workers.market import (
    InsufficientLiquidityError,
    NoRouteError,
    Pool,
    Route,
    Token,
    VenueQuote,
    best_route,
    venue_quotes,
)
from workers.store import OrderStore

DEXES = ("raydium", "meteora")
QUOTE_LATENCY_MS = (150, 250)


@dataclass(frozen=True, slots=True)
class MarketView:
    quotes: list[VenueQuote]
    route: Route


class Venues:
    def __init__(self, store: OrderStore, *, latency: str, failure_rate: float, seed: int) -> None:
        self._store = store
        self._latency = latency
        self._failure_rate = failure_rate
        self._seed = seed
        self._pools: dict[str, Pool] = {}
        self._version = -1

    async def pools(self) -> dict[str, Pool]:
        """The pools as settled now; re-read only when a settlement has moved one (one cheap query otherwise)."""
        version = await self._store.pools_version()
        if version != self._version:
            self._pools, self._version = await self._store.load_pools()
        return self._pools

    async def _ask(self, dex: str, key: tuple[str, int] | None) -> None:
        if self._latency == "realistic":
            lo, hi = QUOTE_LATENCY_MS
            jitter = faults.draw(self._seed, "latency", dex, key)
            await asyncio.sleep((lo + (hi - lo) * jitter) / 1000)
        if key is not None and faults.venue_fails(self._seed, self._failure_rate, key[0], key[1], dex):
            raise TransientFailure(ErrorCode.DEX_UNAVAILABLE, f"{dex} did not answer the quote request")

    async def quote(
        self, token_in: Token, token_out: Token, amount_in: int, *, order: tuple[str, int] | None = None
    ) -> MarketView:
        """Asks both venues at once and routes over their pools. `order` (id, attempt) enables failure draws."""
        await asyncio.gather(*(self._ask(dex, order) for dex in DEXES))
        pools = list((await self.pools()).values())
        try:
            route = best_route(pools, token_in, token_out, amount_in)
            quotes = venue_quotes(pools, token_in, token_out, amount_in)
        except NoRouteError as exc:
            raise PermanentFailure(ErrorCode.NO_ROUTE, str(exc)) from exc
        except InsufficientLiquidityError as exc:
            raise PermanentFailure(ErrorCode.INSUFFICIENT_LIQUIDITY, str(exc)) from exc
        return MarketView(quotes=quotes, route=route)
