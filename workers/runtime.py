"""The composition root: every part of a process's engine is built here, once, by `Engine.open`.

A worker process opens it when Dramatiq boots (`middleware/engine_lifecycle.py`, with the worker's broker); the gRPC
server opens the same engine (`server/grpc_app.py`, with a broker that only sends) and adds its faces. Either way
one store pool, one async Redis client, one event path (`events`: metrics and traces attach there with
`events.observe`), one venue cache and one order queue serve the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import dramatiq
import redis.asyncio as aioredis

from workers.broker import broker_kind, broker_url, build_broker
from workers.chain import ChainProfile
from workers.config import Settings
from workers.events import EventSink
from workers.market import Pool, Token, genesis_pools
from workers.market.launch import launch_pool
from workers.market.tokens import register_token
from workers.publisher import EventPublisher
from workers.queue import BrokerQueue, OrderQueue
from workers.redis_client import async_redis
from workers.revisits import Revisits
from workers.store import OrderStore
from workers.venues import Venues


@dataclass
class Engine:
    settings: Settings
    store: OrderStore
    redis: aioredis.Redis
    events: EventSink
    venues: Venues
    queue: OrderQueue
    chain: ChainProfile
    revisits: Revisits
    _own_broker: dramatiq.Broker | None = field(default=None, repr=False)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        broker: dramatiq.Broker | None = None,
        *,
        pool_size: int = 10,
        redis_timeout_s: float = 5.0,
    ) -> Engine:
        """The engine on the settings' stores. Without a `broker`, one that only sends is built (and closed)."""
        assert settings.database_url and settings.redis_url, "DATABASE_URL and REDIS_URL must be set"
        sender = broker if broker is not None else build_broker(settings)
        redis = async_redis(settings.redis_url, socket_timeout=redis_timeout_s)
        events = EventSink(EventPublisher(redis))
        store = await OrderStore.open(settings.database_url, max_size=pool_size, sink=events)
        queue = BrokerQueue(sender, broker_name=broker_kind(broker_url(settings)))
        # Every committed pool move becomes one "pools moved" message for the trigger engine (workers/triggers.py).
        events.on_pools_moved(queue.pools_moved_async)
        return cls(
            settings=settings,
            store=store,
            redis=redis,
            events=events,
            venues=Venues(
                store,
                latency=settings.market_latency,
                failure_rate=settings.market_failure_rate,
                seed=settings.market_seed,
            ),
            queue=queue,
            chain=ChainProfile.for_latency(settings.market_latency),
            revisits=Revisits(queue),
            _own_broker=sender if broker is None else None,
        )

    async def close(self) -> None:
        self.queue.close()
        await self.redis.aclose()
        await self.store.close()
        if self._own_broker is not None:
            self._own_broker.close()


_current: Engine | None = None


def set_current(engine: Engine | None) -> None:
    global _current
    _current = engine


def current() -> Engine:
    if _current is None:
        raise RuntimeError("the engine is not running in this process (is the EngineLifecycle middleware on?)")
    return _current


@dataclass(frozen=True)
class Seeding:
    """What `seed_market` found and did."""

    created: int  # genesis pools created now
    market_seed: int | None  # the seed the store's market was made with (None: made before seeds were recorded)
    applied: bool  # whether MARKET_SEED is the seed of the market in the store

    def ignored_warning(self, wanted: int) -> str | None:
        if self.applied:
            return None
        made = f"MARKET_SEED={self.market_seed}" if self.market_seed is not None else "an unrecorded seed"
        return (
            f"MARKET_SEED={wanted} is not applied: the store already has a market (made with {made}, as trading "
            f"has left it) and keeps it; `orderengine market reset --seed {wanted}` replaces it with the genesis "
            f"market of seed {wanted}"
        )


async def seed_market(settings: Settings) -> Seeding:
    """Creates the genesis pools of MARKET_SEED that do not exist yet; a new market records its seed."""
    assert settings.database_url
    store = await OrderStore.open(settings.database_url, min_size=1, max_size=1)
    try:
        recorded, seed = await store.market_seed()
        genesis = genesis_pools(settings.market_seed)
        created = await store.seed_pools(genesis)
        if not recorded and created == len(genesis):
            await store.record_market_seed(settings.market_seed)
            recorded, seed = await store.market_seed()
        return Seeding(created=created, market_seed=seed, applied=recorded and seed == settings.market_seed)
    finally:
        await store.close()


async def reset_market(settings: Settings, seed: int) -> int:
    """Every pool back to the genesis market of `seed`; returns how many pools it has."""
    assert settings.database_url
    store = await OrderStore.open(settings.database_url, min_size=1, max_size=1)
    try:
        return await store.reset_market(seed, genesis_pools(seed))
    finally:
        await store.close()


async def list_pools(settings: Settings) -> list[str]:
    """One line per pool: venue, pair, spot price and depth, as the market stands now."""
    from workers.market import format_amount

    assert settings.database_url
    store = await OrderStore.open(settings.database_url, min_size=1, max_size=1)
    try:
        for token in await store.load_tokens():
            register_token(token)
        pools = await store.load_pools()
    finally:
        await store.close()
    lines = [f"{'pool':<28} {'venue':<8} {'pair':<14} {'price':>18}  reserves"]
    for pool in sorted(pools.values(), key=lambda p: (p.token_x.symbol, p.token_y.symbol, p.dex)):
        x, y = pool.reserves()
        pair = f"{pool.token_x.symbol}/{pool.token_y.symbol}"
        x_text, y_text = format_amount(x, pool.token_x), format_amount(y, pool.token_y)
        reserves = f"{x_text} {pool.token_x.symbol} + {y_text} {pool.token_y.symbol}"
        lines.append(
            f"{pool.id:<28} {pool.dex:<8} {pair:<14} {float(pool.spot_price(pool.token_x)):>18.8g}  {reserves}"
        )
    return lines


async def launch_token(settings: Settings, token: Token, paired: Token, price: Decimal, liquidity: Decimal) -> Pool:
    """Lists `token` with a Raydium CPMM pool against `paired`; the trigger engine hears of it at once when Redis
    is reachable (REDIS_URL), else at its reconciler's next sweep."""
    pool = launch_pool(token, paired, price, liquidity)
    assert settings.database_url
    if settings.redis_url:
        engine = await Engine.open(settings, pool_size=2)
        try:
            launched = await engine.store.launch(token, pool)
        finally:
            await engine.close()
    else:
        store = await OrderStore.open(settings.database_url, min_size=1, max_size=1)
        try:
            launched = await store.launch(token, pool)
        finally:
            await store.close()
    if not launched:
        raise ValueError(f"{token.symbol} ({token.mint}) is listed already")
    return pool
