"""The venues as the engine reaches them: network latency and seeded failures around the market's pure math.

The math (pools, quotes, routes) is in `workers.market`; this module adds what talking to a DEX costs: a quote
takes ~200 ms under `realistic` latency and fails at MARKET_FAILURE_RATE. For an order the latency is a delayed
message (`quote_wait_ms`, see `workers.pipeline`), so no thread waits on it; GetQuote awaits it on the server's loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from workers import faults
from workers.domain import ErrorCode, PermanentFailure, TransientFailure
from workers.market import (
    DEXES,
    InsufficientLiquidityError,
    NoRouteError,
    Pool,
    Route,
    Token,
    UnknownTokenError,
    VenueQuote,
    VenueShortfall,
    best_route,
    resolve_token,
    venue_quotes_and_shortfalls,
)
from workers.market.tokens import register_token
from workers.models import SkippedVenue
from workers.store import OrderStore

QUOTE_LATENCY_MS = (150, 250)


@dataclass(frozen=True, slots=True)
class MarketView:
    quotes: list[VenueQuote]
    route: Route
    unquoted: list[VenueShortfall] = field(default_factory=list)  # venues with no quote of their own, and why


def _failure_code(exc: NoRouteError | InsufficientLiquidityError) -> ErrorCode:
    return ErrorCode.NO_ROUTE if isinstance(exc, NoRouteError) else ErrorCode.INSUFFICIENT_LIQUIDITY


class Venues:
    def __init__(self, store: OrderStore, *, latency: str, failure_rate: float, seed: int) -> None:
        self._store = store
        self._latency = latency
        self._failure_rate = failure_rate
        self._seed = seed
        self._pools: dict[str, Pool] = {}
        self._versions: dict[str, int] = {}
        self._tokens_read_at = float("-inf")
        # Concurrent callers of `pools` share reads: at most one runs, and those who ask meanwhile share the next.
        self._one_read = asyncio.Lock()
        self._next_read: asyncio.Task[dict[str, Pool]] | None = None

    async def learn_tokens(self, max_age_s: float = 0.0) -> None:
        """Lists in this process the tokens launched since it last looked (at most every `max_age_s`)."""
        now = time.monotonic()
        if now - self._tokens_read_at < max_age_s:
            return
        for token in await self._store.load_tokens():
            register_token(token)
        self._tokens_read_at = now

    async def tokens(self, *symbols_or_mints: str) -> list[Token]:
        """The tokens named, by symbol or mint. One listed since this process last looked (a launch, by the market or
        `orderengine market launch`, maybe in another process) is learned from the store first."""
        try:
            return [resolve_token(t) for t in symbols_or_mints]
        except UnknownTokenError:
            await self.learn_tokens()
            return [resolve_token(t) for t in symbols_or_mints]

    async def pools(self) -> dict[str, Pool]:
        """The pools as settled now: one cheap query for their versions, then only the changed ones are read.

        "Now" is a read that started after the call: under a burst, the calls that arrive while one read runs all
        wait for the one that starts after it, so 200 orders at once cost a few reads, not 200 (and no caller sees
        pools older than its call). The read is a task of its own, so a cancelled caller cancels no one else's."""
        if self._next_read is None:
            self._next_read = asyncio.create_task(self._read_after_current(), name="venues-pools-read")
            # Read here (when every caller was cancelled), so a failed read left alone logs nothing.
            self._next_read.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._next_read)

    async def _read_after_current(self) -> dict[str, Pool]:
        async with self._one_read:
            self._next_read = None  # whoever asks from here on needs a read that starts after this one
            return await self._read_pools()

    async def _read_pools(self) -> dict[str, Pool]:
        versions = await self._store.pool_versions()
        for gone in self._pools.keys() - versions.keys():  # a pool taken off the market trades no more
            del self._pools[gone], self._versions[gone]
        stale = [pid for pid, v in versions.items() if self._versions.get(pid) != v]
        if any(pid not in self._pools for pid in stale):
            await self.learn_tokens()  # a new pool may be a launch: its token must be known to read it
        if stale:
            for pid, (pool, version) in (await self._store.load_pools_by_id(stale)).items():
                self._pools[pid], self._versions[pid] = pool, version
        return self._pools

    @property
    def answers_at_once(self) -> bool:
        """True when an order's quote needs no wait (`quote_wait_ms` is 0 whenever it was asked)."""
        return self._latency != "realistic"

    def remember(self, written: dict[str, tuple[Pool, int]]) -> None:
        """Pools this process has just written and committed, at their new versions: `pools` then reads only what
        others changed since."""
        for pid, (pool, version) in written.items():
            if pid in self._pools and self._versions.get(pid, version) < version:
                self._pools[pid], self._versions[pid] = pool, version

    def latency_ms(self, dex: str, key: tuple[str, int] | None) -> float:
        if self._latency != "realistic":
            return 0.0
        lo, hi = QUOTE_LATENCY_MS
        return lo + (hi - lo) * faults.draw(self._seed, "latency", dex, key)

    def quote_wait_ms(self, order_id: str, attempt: int, *, asked_at: datetime) -> int:
        """How long until both venues have answered an order's quote request sent at `asked_at` (0: they have)."""
        if self.answers_at_once:  # every order at zero latency asks this, on the accept and in the worker
            return 0
        slowest = max(self.latency_ms(dex, (order_id, attempt)) for dex in DEXES)
        due = asked_at + timedelta(milliseconds=slowest)
        return max(0, int((due - datetime.now(UTC)).total_seconds() * 1000))

    async def quote(self, token_in: Token, token_out: Token, amount_in: int) -> MarketView:
        """What GetQuote answers: each venue's own quote and the best route over both, after the venues' latency."""
        await asyncio.sleep(max(self.latency_ms(dex, None) for dex in DEXES) / 1000)
        pools = list((await self.pools()).values())
        try:
            route = best_route(pools, token_in, token_out, amount_in)
            quotes, unquoted = venue_quotes_and_shortfalls(pools, token_in, token_out, amount_in)
        except (NoRouteError, InsufficientLiquidityError) as exc:
            raise PermanentFailure(_failure_code(exc), str(exc)) from exc
        return MarketView(quotes=quotes, route=route, unquoted=unquoted)

    async def route_order(
        self, token_in: Token, token_out: Token, amount_in: int, *, order: tuple[str, int]
    ) -> tuple[Route, tuple[SkippedVenue, ...]]:
        """An order's route (`order` = id, attempt), once the caller has let the latency pass (`quote_wait_ms`), and
        the venues it routed without.

        Each venue may fail as seeded: routing goes on with the venues that answered, as an aggregator does, and
        only when none did (or those that did cannot route the order) is the attempt a transient failure. No
        per-venue quotes: an order needs only its route.
        """
        skipped = tuple(
            SkippedVenue(dex, f"{dex} did not answer the quote request")
            for dex in DEXES
            if faults.venue_fails(self._seed, self._failure_rate, order[0], order[1], dex)
        )
        if len(skipped) == len(DEXES):
            raise TransientFailure(
                ErrorCode.DEX_UNAVAILABLE, f"no venue answered the quote request ({', '.join(DEXES)})"
            )
        silent = {venue.dex for venue in skipped}
        pools = [p for p in (await self.pools()).values() if p.dex not in silent]
        try:
            return best_route(pools, token_in, token_out, amount_in), skipped
        except (NoRouteError, InsufficientLiquidityError) as exc:
            if skipped:  # the venue that could have filled it may answer next time
                names = ", ".join(sorted(silent))
                raise TransientFailure(
                    ErrorCode.DEX_UNAVAILABLE, f"{names} did not answer, and the venues that did cannot: {exc}"
                ) from exc
            raise PermanentFailure(_failure_code(exc), str(exc)) from exc

    async def price_impact_bps(self, token_in: Token, token_out: Token, amount_in: int) -> int | None:
        """The price impact of the route an order would take on the pools as they are now (no venue latency);
        None when no route can fill it (routing will say why)."""
        pools = list((await self.pools()).values())
        try:
            return best_route(pools, token_in, token_out, amount_in).price_impact_bps
        except (NoRouteError, InsufficientLiquidityError):
            return None
