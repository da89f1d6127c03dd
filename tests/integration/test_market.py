"""The mock market through the running engine: size-dependent quotes, splits, prices that move with trades, exact
settlement under two workers (checked against a serial replay), slippage protection, wSOL steps, seeds, drift.

Each scenario runs on a stack of its own, so that the shared `stack`'s market is left to the other tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import grpc
import psycopg
import pytest
from psycopg.types.json import Jsonb

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import LIFECYCLE, TERMINAL, assert_gap_free, execute, statuses, watch_all
from tests.replay import pool_states, replay_settlements
from tests.stack import Stack, Stores
from workers.market import SOL, USDC, format_amount, genesis_pools, pool_from_json, route_from_json
from workers.market import execute as execute_route
from workers.market.launch import DEFAULT_LIQUIDITY, launch_pool, planned_launch
from workers.middleware.market_drift import DriftPlan, drifted, plan_drift
from workers.migrate import migrate
from workers.store import DRIFT_LOCK_KEY, OrderStore

Stub: TypeAlias = "pb_grpc.OrderServiceAsyncStub"
GENESIS_SEED = 7  # what Stack.start uses
REALISTIC_SEED = "11"  # also one of the two fresh seed-11 markets of the seed test, which runs before it trades
DRIFT_SECONDS = 0.25


# -- stacks ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def market(stores: Stores) -> Iterator[Stack]:
    """Zero latency, seed 7, two worker processes sharing one market."""
    s = Stack.start(stores)
    s.spawn_ready("worker2", "worker")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def realistic(stores: Stores) -> Iterator[Stack]:
    """Realistic latency (quotes ~200 ms, confirmation 2-2.8 s after `submitted`), drift off."""
    s = Stack.start(stores, MARKET_LATENCY="realistic", MARKET_DRIFT_SECONDS="0", MARKET_SEED=REALISTIC_SEED)
    yield s
    s.stop()


async def _stub_for(stack: Stack) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


@pytest.fixture(scope="module")
async def market_stub(market: Stack) -> AsyncIterator[Stub]:
    async for stub in _stub_for(market):
        yield stub


@pytest.fixture(scope="module")
async def realistic_stub(realistic: Stack) -> AsyncIterator[Stub]:
    async for stub in _stub_for(realistic):
        yield stub


# -- helpers -----------------------------------------------------------------------------------------------------


async def quote(stub: Stub, amount: str, token_in: str = "SOL", token_out: str = "USDC") -> pb.GetQuoteResponse:
    return await stub.GetQuote(pb.GetQuoteRequest(token_in=token_in, token_out=token_out, amount=amount), timeout=10)


def venue_out(q: pb.GetQuoteResponse) -> dict[int, Decimal]:
    return {v.dex: Decimal(v.amount_out) for v in q.quotes}


def event_of(events: list[pb.OrderEvent], status: int) -> pb.OrderEvent:
    found = [e for e in events if e.status == status]
    assert len(found) == 1, statuses(events)
    return found[0]


# -- quotes ------------------------------------------------------------------------------------------------------


async def test_larger_order_gets_worse_price_and_a_split_that_beats_each_venue(market_stub: Stub) -> None:
    small, large = await quote(market_stub, "1"), await quote(market_stub, "10000")

    per_sol_small = Decimal(small.route.amount_out)
    per_sol_large = Decimal(large.route.amount_out) / 10_000
    assert per_sol_large < per_sol_small * Decimal("0.99"), (per_sol_small, per_sol_large)  # > 1% worse per SOL
    assert large.route.price_impact_bps > small.route.price_impact_bps

    # Both venues answer, and not alike: their pools hold different prices, depths and fees.
    small_venues, large_venues = venue_out(small), venue_out(large)
    assert set(small_venues) == set(large_venues) == {pb.DEX_RAYDIUM, pb.DEX_METEORA}
    assert small_venues[pb.DEX_RAYDIUM] != small_venues[pb.DEX_METEORA]
    assert large_venues[pb.DEX_RAYDIUM] != large_venues[pb.DEX_METEORA]
    assert {v.fee_bps for v in small.quotes} == {25, 8}  # Raydium's 0.25%; Meteora's base fee at a 10 bps bin step

    # 10,000 SOL: split over both venues, paying more than either would alone.
    legs = large.route.legs
    assert {leg.dex for leg in legs} == {pb.DEX_RAYDIUM, pb.DEX_METEORA}
    assert all((leg.token_in, leg.token_out) == ("SOL", "USDC") for leg in legs)
    assert sum(Decimal(leg.amount_in) for leg in legs) == 10_000
    assert sum(Decimal(leg.amount_out) for leg in legs) == Decimal(large.route.amount_out)
    assert all(Decimal(leg.amount_in) >= 100 for leg in legs)  # a real split, not a token share
    assert Decimal(large.route.amount_out) > max(large_venues.values())
    # A 1 SOL order goes where it pays most, whole.
    assert len(small.route.legs) == 1
    assert Decimal(small.route.amount_out) == max(small_venues.values())


async def test_large_order_moves_the_price_the_next_quote_sees(market_stub: Stub) -> None:
    before = await quote(market_stub, "1")
    order_id = await execute(market_stub, "SOL", "USDC", "5000", slippage_bps=200)
    events = await watch_all(market_stub, order_id)
    assert statuses(events) == LIFECYCLE
    used = {leg.dex for leg in event_of(events, pb.ORDER_STATUS_BUILDING).route.legs}
    after = await quote(market_stub, "1")

    old, new = venue_out(before), venue_out(after)
    for dex in used:  # selling 5,000 SOL made SOL cheaper there
        assert new[dex] < old[dex] * Decimal("0.999"), (dex, old[dex], new[dex])
    for unused in set(old) - used:
        assert new[unused] == old[unused]
    assert Decimal(after.route.amount_out) < Decimal(before.route.amount_out)


# -- transactions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_in", "token_out", "amount", "wrap", "unwrap"),
    [
        ("SOL", "USDC", "0.5", True, True),
        ("USDC", "SOL", "100", False, True),
        ("USDC", "USDT", "100", False, False),
    ],
)
async def test_native_sol_is_wrapped_and_unwrapped(
    market_stub: Stub, token_in: str, token_out: str, amount: str, wrap: bool, unwrap: bool
) -> None:
    order_id = await execute(market_stub, token_in, token_out, amount)
    events = await watch_all(market_stub, order_id)
    assert statuses(events) == LIFECYCLE
    steps = list(event_of(events, pb.ORDER_STATUS_BUILDING).instructions)
    assert ("wrap_sol" in steps) is wrap
    assert ("unwrap_sol" in steps) is unwrap
    swap = steps.index("swap")
    if wrap:
        assert steps.index("create_ata_wsol") < steps.index("wrap_sol") < steps.index("sync_native") < swap
    if unwrap:
        assert steps[-1] == "unwrap_sol"  # closing the wSOL account returns the lamports as native SOL


async def test_pair_without_a_pool_confirms_through_one_hop(market_stub: Stub) -> None:
    # Genesis has no JitoSOL/USDC pool: the route goes JitoSOL -> SOL -> USDC, and SOL never leaves the swap.
    q = await quote(market_stub, "2", "JitoSOL", "USDC")
    assert [(leg.token_in, leg.token_out) for leg in q.route.legs] == [("JitoSOL", "SOL"), ("SOL", "USDC")]
    order_id = await execute(market_stub, "JitoSOL", "USDC", "2", slippage_bps=100)
    events = await watch_all(market_stub, order_id)
    assert statuses(events) == LIFECYCLE
    building, confirmed = event_of(events, pb.ORDER_STATUS_BUILDING), events[-1]
    legs = building.route.legs
    assert [(leg.token_in, leg.token_out) for leg in legs] == [("JitoSOL", "SOL"), ("SOL", "USDC")]
    assert legs[1].amount_in == legs[0].amount_out  # the second leg sells what the first bought
    steps = list(building.instructions)
    assert steps.count("swap") == 2 and "wrap_sol" not in steps and "unwrap_sol" not in steps
    assert Decimal(confirmed.amount_out) >= Decimal(building.route.min_amount_out)


# -- concurrent settlement == serial replay ----------------------------------------------------------------------


async def test_two_workers_settling_200_swaps_match_a_serial_replay(market: Stack, market_stub: Stub) -> None:
    assert market.processes["worker2"].poll() is None
    sells = [("SOL", "USDC", f"{0.5 + (i % 7) * 0.25}") for i in range(100)]
    buys = [("USDC", "SOL", f"{60 + (i % 9) * 15}") for i in range(100)]
    orders = [o for pair in zip(sells, buys, strict=True) for o in pair]
    order_ids = await asyncio.gather(*(execute(market_stub, *o, slippage_bps=2000) for o in orders))
    histories = await asyncio.gather(*(watch_all(market_stub, oid, within=60) for oid in order_ids))
    for history in histories:
        assert history[-1].status in TERMINAL
        assert_gap_free(history)
        assert statuses(history) == LIFECYCLE, history[-1].error  # small enough that none breaks its slippage
    # Both processes did the work (each logs the orders it confirmed).
    for worker in ("worker", "worker2"):
        assert "confirmed" in (market.logs / f"{worker}.log").read_text(), market.log_tail(worker)

    replay = await asyncio.to_thread(replay_settlements, market.database_url, GENESIS_SEED)
    assert set(order_ids) <= set(replay.order_ids)
    stored = pool_states(market.database_url)
    assert stored == {pool_id: pool.to_json() for pool_id, pool in replay.pools.items()}
    assert any(stored[p.id] != p.to_json() for p in genesis_pools(GENESIS_SEED))

    with psycopg.connect(market.database_url) as conn:
        per_order = conn.execute(
            "SELECT o.status, count(s.order_id) FROM orders o LEFT JOIN settlements s ON s.order_id = o.id "
            "GROUP BY o.id, o.status"
        ).fetchall()
    assert {status for status, _ in per_order} <= {"confirmed", "failed"}
    assert all(n == (1 if status == "confirmed" else 0) for status, n in per_order)


# -- seeds -------------------------------------------------------------------------------------------------------


async def test_same_seed_gives_the_same_market(stores: Stores, realistic: Stack) -> None:
    # `realistic` (seed 11) has not traded yet: the slippage test below is the first to move its market.
    assert pool_states(realistic.database_url) == {p.id: p.to_json() for p in genesis_pools(int(REALISTIC_SEED))}
    stacks: list[Stack] = [realistic]
    started: list[Stack] = []
    try:
        for seed in (REALISTIC_SEED, "12"):  # one at a time: forking while gRPC threads run here can hang
            started.append(Stack.start(stores, MARKET_SEED=seed))
        stacks += started
        asks = [("SOL", "USDC", "1"), ("SOL", "USDC", "10000"), ("USDC", "SOL", "5000"), ("BONK", "USDT", "1000000")]
        answers = []
        for s in stacks:
            async for stub in _stub_for(s):
                answers.append([await quote(stub, amount, a, b) for a, b, amount in asks])
        assert answers[0] == answers[1]
        assert answers[0] != answers[2]
        assert all(x != y for x, y in zip(answers[0], answers[2], strict=True))
        assert pool_states(stacks[0].database_url) == pool_states(stacks[1].database_url)
    finally:
        for s in started:
            s.stop()


# -- slippage ----------------------------------------------------------------------------------------------------


async def _move_against(database_url: str, pool_ids: list[str], sol: int) -> dict[str, dict[str, Any]]:
    """Another trader's settlement landing first: sells `sol` SOL into each pool, in one transaction, the way
    `OrderStore.settle` writes a pool (locked, new state, version + 1). Returns every pool's state after it."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT id, state FROM pools WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (sorted(pool_ids),)
            )
            for pool_id, state in await cur.fetchall():
                moved = pool_from_json(state).swap(SOL, sol * 10**SOL.decimals).pool_after
                await conn.execute(
                    "UPDATE pools SET state = %s, version = version + 1, updated_at = clock_timestamp() WHERE id = %s",
                    (Jsonb(moved.to_json()), pool_id),
                )
        cur = await conn.execute("SELECT id, state FROM pools")
        return {r[0]: r[1] for r in await cur.fetchall()}


async def test_slippage_breach_fails_once_for_good_and_leaves_the_pools(realistic: Stack, realistic_stub: Stub) -> None:
    order_id = await execute(realistic_stub, "SOL", "USDC", "100", slippage_bps=1)
    events: list[pb.OrderEvent] = []
    left: dict[str, dict[str, Any]] = {}

    async def follow() -> None:
        nonlocal left
        async for response in realistic_stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id)):
            events.append(response.event)
            if response.event.status == pb.ORDER_STATUS_SUBMITTED:
                # Confirmation is 2-2.8 s away: the market moves before it, against the order.
                used = [leg.pool_id for leg in event_of(events, pb.ORDER_STATUS_BUILDING).route.legs]
                left = await _move_against(realistic.database_url, used, 1_000)

    await asyncio.wait_for(follow(), 20)

    assert statuses(events) == [*LIFECYCLE[:4], pb.ORDER_STATUS_FAILED]  # no retry, one failed event
    assert all(e.attempt == 1 for e in events)
    assert_gap_free(events)
    building, failed = event_of(events, pb.ORDER_STATUS_BUILDING), events[-1]
    assert failed.error.code == "SLIPPAGE_EXCEEDED" and not failed.error.retryable
    # The message names what the swap would return now and the minimum the order accepted.
    with psycopg.connect(realistic.database_url) as conn:
        row = conn.execute("SELECT route FROM orders WHERE id = %s", (order_id,)).fetchone()
        assert row is not None
        settled = conn.execute("SELECT count(*) FROM settlements WHERE order_id = %s", (order_id,)).fetchone()
    now = execute_route(route_from_json(row[0]), {i: pool_from_json(s) for i, s in left.items()})
    assert f"{format_amount(now.amount_out, USDC)} USDC" in failed.error.message
    assert f"{building.route.min_amount_out} USDC" in failed.error.message
    assert now.amount_out < int(Decimal(building.route.min_amount_out).scaleb(USDC.decimals))

    assert settled == (0,)
    assert pool_states(realistic.database_url) == left  # untouched by the refused swap
    order = (await realistic_stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert order.status == pb.ORDER_STATUS_FAILED and order.error.code == "SLIPPAGE_EXCEEDED"
    assert not order.amount_out


# -- drift -------------------------------------------------------------------------------------------------------


async def test_drift_store_guard_applies_once(stores: Stores) -> None:
    url = stores.new_database()
    await asyncio.to_thread(migrate, url)
    store = await OrderStore.open(url, min_size=1, max_size=6)
    try:
        await store.seed_pools(genesis_pools(GENESIS_SEED))
        with psycopg.connect(url) as conn:  # a market idle for an hour
            conn.execute("UPDATE pools SET updated_at = updated_at - interval '1 hour'")
        pool_id = "raydium-SOL-USDC"
        plan = DriftPlan(pool_id, sell_x=True, move_bps=3)

        def versions() -> dict[str, int]:
            with psycopg.connect(url) as conn:
                return {r[0]: r[1] for r in conn.execute("SELECT id, version FROM pools")}

        # Five workers drifting the same interval (it began a second ago) at once: one applies, the rest skip.
        start = datetime.now(UTC) - timedelta(seconds=1)
        results = await asyncio.gather(
            *(
                store.drift_pool(pool_id, lambda p, idle: drifted(p, plan, idle), unchanged_since=start)
                for _ in range(5)
            )
        )
        applied = [r for r in results if r is not None]
        assert len(applied) == 1
        assert versions()[pool_id] == 1 and sum(versions().values()) == 1
        genesis = {p.id: p for p in genesis_pools(GENESIS_SEED)}[pool_id]
        moved = pool_from_json(pool_states(url)[pool_id])
        assert moved == applied[0] == drifted(genesis, plan, 0)
        move_bps = (1 - moved.spot_price(SOL) / genesis.spot_price(SOL)) * 10_000
        assert 3 <= move_bps <= 10  # a few bps, SOL cheaper (SOL was sold)

        # Later in the same interval (the pool changed since it began): nothing.
        assert await store.drift_pool(pool_id, lambda p, idle: drifted(p, plan, idle), unchanged_since=start) is None
        # While another process holds the drift lock: nothing either.
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (DRIFT_LOCK_KEY,))
            assert await store.drift_pool(pool_id, lambda p, idle: drifted(p, plan, idle)) is None
            holder.execute("SELECT pg_advisory_unlock(%s)", (DRIFT_LOCK_KEY,))
        assert versions()[pool_id] == 1
        # The next interval's drift applies.
        assert await store.drift_pool(pool_id, lambda p, idle: drifted(p, plan, idle)) is not None
        assert versions()[pool_id] == 2
    finally:
        await store.close()


def test_drift_plan_is_seeded() -> None:
    ids = [p.id for p in genesis_pools(GENESIS_SEED)]
    plans = [plan_drift(GENESIS_SEED, n, ids) for n in range(200)]
    assert plans == [plan_drift(GENESIS_SEED, n, list(reversed(ids))) for n in range(200)]
    assert plans != [plan_drift(GENESIS_SEED + 1, n, ids) for n in range(200)]
    assert {p.pool_id for p in plans} == set(ids) and {p.sell_x for p in plans} == {True, False}
    assert all(1 <= p.move_bps <= 5 for p in plans)


async def test_idle_market_drifts_once_per_interval_across_workers(stores: Stores) -> None:
    s = await asyncio.to_thread(
        Stack.start, stores, MARKET_LATENCY="realistic", MARKET_DRIFT_SECONDS=str(DRIFT_SECONDS)
    )
    try:
        s.spawn_ready("worker2", "worker")

        def total_versions() -> int:
            with psycopg.connect(s.database_url) as conn:
                row = conn.execute("SELECT sum(version) FROM pools").fetchone()
                assert row is not None
                return int(row[0])

        def booted(name: str) -> bool:
            path = s.logs / f"{name}.log"
            return path.exists() and "worker ready" in path.read_text(errors="replace")

        # Drift is a clock, not an event: once both workers run (their logs say so; nothing to await),
        # observe it over a window of whole intervals. No orders are placed, so every pool version is a drift.
        deadline = time.monotonic() + 20
        while not all(booted(name) for name in ("worker", "worker2")) or total_versions() == 0:
            assert time.monotonic() < deadline, s.log_tail("worker2")
            await asyncio.sleep(DRIFT_SECONDS / 2)
        start_version, start = total_versions(), time.time()
        await asyncio.sleep(12 * DRIFT_SECONDS)
        drifts, end = total_versions() - start_version, time.time()
        intervals = int(end // DRIFT_SECONDS) - int(start // DRIFT_SECONDS)
        # Both workers wake every interval; without the guard this would be about twice `intervals`.
        # The lower bound is loose: a starved event loop may miss an interval; it can never add one.
        assert intervals // 3 <= drifts <= intervals + 1, (drifts, intervals)
        moved = pool_states(s.database_url)
        assert sum(moved[p.id] != p.to_json() for p in genesis_pools(GENESIS_SEED)) >= 2
    finally:
        s.stop()


LAUNCH_SECONDS = 1.0


def _launched(database_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT symbol, mint FROM tokens WHERE symbol LIKE 'NEW%%' ORDER BY listed_at").fetchall()


async def test_the_market_lists_its_planned_tokens_and_they_trade(stores: Stores) -> None:
    """MARKET_LAUNCH_SECONDS (realistic latency): the market lists the tokens `planned_launch` names for its
    intervals, with two workers running, each with its Raydium pool at its opening price, and a launched token can be
    traded by symbol at once (the server learns it on the first order that names it)."""
    first = int(time.time() // LAUNCH_SECONDS)
    s = await asyncio.to_thread(
        Stack.start,
        stores,
        MARKET_LATENCY="realistic",
        MARKET_DRIFT_SECONDS="0",
        MARKET_LAUNCH_SECONDS=str(LAUNCH_SECONDS),
    )
    try:
        s.spawn_ready("worker2", "worker")
        both = int(time.time() // LAUNCH_SECONDS) + 1  # from this interval on, both workers plan every launch

        def intervals() -> tuple[list[tuple[str, str]], dict[str, int]]:
            now = int(time.time() // LAUNCH_SECONDS)
            planned = {planned_launch(7, i)[0].mint: i for i in range(first - 1, now + 1)}
            return _launched(s.database_url), planned

        # A launch is a clock, not an event: look for the intervals' tokens (nothing to await).
        deadline = time.monotonic() + 20
        launched, planned = intervals()
        while sum(planned.get(mint, 0) >= both for _, mint in launched) < 2:
            assert time.monotonic() < deadline, s.log_tail("worker")
            await asyncio.sleep(LAUNCH_SECONDS / 4)
            launched, planned = intervals()
        assert all(mint in planned for _, mint in launched), (launched, first)
        symbol, mint = launched[0]
        token, price = planned_launch(7, planned[mint])
        assert symbol == token.symbol
        states = pool_states(s.database_url)
        assert states[f"raydium-{symbol}-SOL"] == launch_pool(token, SOL, price, DEFAULT_LIQUIDITY).to_json()

        async with grpc.aio.insecure_channel(s.grpc_target) as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            order_id = await execute(stub, "SOL", symbol, "0.01", slippage_bps=500)
            try:
                history = await watch_all(stub, order_id, within=20)
            except TimeoutError:
                raise AssertionError(s.log_tail("worker", 80) + s.log_tail("worker2", 80)) from None
        assert statuses(history) == LIFECYCLE, history[-1].error
    finally:
        s.stop()


# -- price impact ------------------------------------------------------------------------------------------------


async def test_price_impact_is_checked_again_at_settlement(realistic: Stack, realistic_stub: Stub) -> None:
    """SOL -> WIF has one pool: between routing and settlement half of its liquidity leaves, so the same swap now
    moves the price more than the order allows; it fails for good and the pool is left as it is."""
    quoted = await quote(realistic_stub, "100", "SOL", "WIF")
    impact = quoted.route.price_impact_bps
    assert [leg.pool_id for leg in quoted.route.legs] == ["raydium-WIF-SOL"] and impact > 0
    limit = impact + 20
    order_id = await execute(realistic_stub, "SOL", "WIF", "100", slippage_bps=5000, max_price_impact_bps=limit)
    events: list[pb.OrderEvent] = []
    left: dict[str, dict[str, Any]] = {}

    async def follow() -> None:
        nonlocal left
        async for response in realistic_stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id)):
            events.append(response.event)
            if response.event.status == pb.ORDER_STATUS_SUBMITTED:  # confirmation is 2-2.8 s away
                left = await _withdraw_half("raydium-WIF-SOL", realistic.database_url)

    await asyncio.wait_for(follow(), 20)

    assert statuses(events) == [*LIFECYCLE[:4], pb.ORDER_STATUS_FAILED]
    failed = events[-1]
    assert failed.error.code == "PRICE_IMPACT_TOO_HIGH" and not failed.error.retryable
    assert "settled now" in failed.error.message and f"limit of {limit} bps" in failed.error.message
    assert pool_states(realistic.database_url) == left
    with psycopg.connect(realistic.database_url) as conn:
        settled = conn.execute("SELECT count(*) FROM settlements WHERE order_id = %s", (order_id,)).fetchone()
    assert settled == (0,)


async def _withdraw_half(pool_id: str, database_url: str) -> dict[str, dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        async with conn.transaction():
            cur = await conn.execute("SELECT state FROM pools WHERE id = %s FOR UPDATE", (pool_id,))
            row = await cur.fetchone()
            assert row is not None
            state = {**row[0], "reserve_x": row[0]["reserve_x"] // 2, "reserve_y": row[0]["reserve_y"] // 2}
            await conn.execute(
                "UPDATE pools SET state = %s, version = version + 1 WHERE id = %s", (Jsonb(state), pool_id)
            )
        cur = await conn.execute("SELECT id, state FROM pools")
        return {r[0]: r[1] for r in await cur.fetchall()}


async def test_quote_says_which_venue_cannot_fill_the_amount_alone(market_stub: Stub) -> None:
    huge = await quote(market_stub, "10000000")
    assert [q.dex for q in huge.quotes] == [pb.DEX_RAYDIUM]
    assert {leg.dex for leg in huge.route.legs} == {pb.DEX_RAYDIUM, pb.DEX_METEORA}  # Meteora fills a part
    [note] = huge.unquoted_venues
    assert note.dex == pb.DEX_METEORA and "cannot fill 10000000 SOL alone" in note.reason
    one_venue = await quote(market_stub, "1", "SOL", "WIF")
    assert [(n.dex, "no pool" in n.reason) for n in one_venue.unquoted_venues] == [(pb.DEX_METEORA, True)]
    assert not (await quote(market_stub, "1")).unquoted_venues
