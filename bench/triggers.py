"""The trigger engine under 100,000 resting orders: how long from a committed pool move to a resting order's
`routing` event, and what one move that makes 1,000 orders reachable costs.

`python -m bench.triggers [RESTING]` runs on embedded stores of its own: it launches a token with one Raydium pool
(BENCH/SOL, so no other pool's price interferes), stores RESTING (default 100,000) limit orders on BENCH -> SOL
between 5 % and 55 % above the price (none reachable), then, 50 times: one order 0.2 % above the price, a committed
move of the pool by +1 % (the move the orders wait for), and `workers.triggers.on_pools_moved` as the `pools_moved`
actor runs it, timed until the order's `routing` event is committed and its message sent; then the pool moves back.
The broker's delivery of the "pools moved" message to a worker is not in the figure (an idle worker polls Redis
every 25 ms, `workers.worker.IDLE_POLL_MS`). Last, 1,000 orders 0.3-0.6 % above the price and one +1 % move: the
time to fire all of them, against the same move with nothing to fire.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg

from server.embedded import EmbeddedPostgres, EmbeddedRedis
from workers.config import Settings
from workers.market import SOL, Token
from workers.market.launch import launch_pool
from workers.middleware.market_drift import DriftPlan, drifted
from workers.migrate import migrate
from workers.runtime import Engine, seed_market
from workers.triggers import on_pools_moved

ROUNDS = 50
BENCH = Token("BENCH", "BENCHm1nt1111111111111111111111111111111111", 6)
POOL_ID = "raydium-BENCH-SOL"
AMOUNT = 1_000_000  # one BENCH per order


def insert_open(database_url: str, n: int, low: Decimal, high: Decimal) -> list[str]:
    """n open limit orders selling one BENCH for SOL, their limits spread evenly over [low, high]."""
    ids = [uuid.uuid4() for _ in range(n)]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        step = (high - low) / max(n - 1, 1)
        with cur.copy(
            "COPY orders (id, owner_id, fingerprint, order_type, token_in, token_out, amount_in, slippage_bps, "
            "status, last_seq, limit_price, trigger_in, trigger_out, trigger_price) FROM STDIN"
        ) as copy:
            for i, oid in enumerate(ids):
                price = low + step * i
                copy.write_row(
                    (
                        oid,
                        "bench",
                        "",
                        "limit",
                        "BENCH",
                        "SOL",
                        AMOUNT,
                        500,
                        "open",
                        2,
                        price,
                        BENCH.mint,
                        SOL.mint,
                        price,
                    )
                )
        conn.execute("ANALYZE orders")
    return [str(i) for i in ids]


async def move(engine: Engine, bps: int) -> float:
    """Moves the pool by `bps` (up: BENCH dearer); the monotonic time right after the commit."""
    plan = DriftPlan(pool_id=POOL_ID, sell_x=bps < 0, move_bps=abs(bps))
    after = await engine.store.drift_pool(POOL_ID, lambda pool, idle: drifted(pool, plan, idle), lock_key=0xBE7C)
    assert after is not None
    return time.monotonic()


async def spot(engine: Engine) -> Decimal:
    return (await engine.venues.pools())[POOL_ID].spot_price(BENCH)


async def run(resting: int, folder: Path) -> None:
    redis, pg = EmbeddedRedis(folder / "redis", persist=False), EmbeddedPostgres(folder / "postgres")
    settings = Settings(redis_url=redis.start(), database_url=pg.start(), market_latency="zero")
    try:
        assert settings.database_url
        migrate(settings.database_url)
        await seed_market(settings)
        engine = await Engine.open(settings)
        # The moves here are timed by hand: no "pools moved" message from the store itself.
        engine.events._pool_hooks.clear()
        try:
            await engine.store.launch(BENCH, launch_pool(BENCH, SOL, Decimal("0.0001"), Decimal("100")))
            price = await spot(engine)
            t = time.monotonic()
            insert_open(settings.database_url, resting, price * Decimal("1.05"), price * Decimal("1.55"))
            print(f"{resting} resting orders stored in {time.monotonic() - t:.1f} s")

            latencies = []
            for _ in range(ROUNDS):
                price = await spot(engine)
                insert_open(settings.database_url, 1, price * Decimal("1.002"), price * Decimal("1.002"))
                committed = await move(engine, 100)
                fired = await on_pools_moved(engine, [POOL_ID])
                latencies.append((time.monotonic() - committed) * 1000)
                assert fired == 1, f"{fired} fired, expected the one order 0.2 % above the price"
                await move(engine, -100)
                assert await on_pools_moved(engine, [POOL_ID]) == 0
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(
                f"trigger latency, pool move committed -> routing event committed and message sent, with {resting} "
                f"resting orders ({ROUNDS} moves): p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms"
            )

            for label, batch in (("nothing reachable", 0), ("1,000 made reachable", 1000)):
                price = await spot(engine)
                if batch:
                    insert_open(settings.database_url, batch, price * Decimal("1.003"), price * Decimal("1.006"))
                await move(engine, 100)
                t = time.monotonic()
                fired = await on_pools_moved(engine, [POOL_ID])
                took = (time.monotonic() - t) * 1000
                assert fired == batch, (fired, batch)
                per = f", {took / batch:.2f} ms per fired order" if batch else ""
                print(f"one +1 % move with {resting} resting, {label}: {fired} fired in {took:.0f} ms{per}")
                await move(engine, -100)
        finally:
            await engine.close()
    finally:
        pg.stop()
        redis.stop()


def main(argv: list[str]) -> int:
    resting = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory(prefix="oe-bench-triggers-") as folder:
        asyncio.run(run(resting, Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
