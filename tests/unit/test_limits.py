"""The pure parts of resting orders: what a limit means in base units, the per-direction bound the trigger engine
scans with, and launches."""

from __future__ import annotations

from decimal import Decimal

from workers.limits import direction_bounds, limit_min_out
from workers.market import SOL, USDC, best_route, genesis_pools
from workers.market.launch import launch_pool, planned_launch
from workers.market.tokens import BONK, Token


def test_limit_min_out_rounds_up_in_base_units() -> None:
    # 1.5 SOL at 150.25 USDC/SOL = 225.375 USDC exactly.
    assert limit_min_out(1_500_000_000, SOL, USDC, Decimal("150.25")) == 225_375_000
    # One lamport at 150.000001 USDC/SOL is a fraction of a micro-USDC: rounded up, never down.
    assert limit_min_out(1, SOL, USDC, Decimal("150.000001")) == 1


def test_no_route_beats_its_directions_bound() -> None:
    """The trigger engine's index scan relies on it: an order whose limit is above the bound cannot be reachable."""
    pools = genesis_pools(7)
    bounds = {(tin.symbol, tout.symbol): bound for tin, tout, bound in direction_bounds(pools)}
    for tin, tout, amount in [(SOL, USDC, 10**6), (SOL, USDC, 10**12), (USDC, SOL, 10**9), (BONK, USDC, 10**12)]:
        route = best_route(pools, tin, tout, amount)
        price = Decimal(route.amount_out).scaleb(-tout.decimals) / Decimal(amount).scaleb(-tin.decimals)
        assert price <= bounds[(tin.symbol, tout.symbol)]


def test_only_directions_a_moved_pool_takes_part_in_are_looked_at() -> None:
    pools = genesis_pools(7)
    moved = {p.id for p in pools if {p.token_x.symbol, p.token_y.symbol} == {"SOL", "USDC"}}
    touched = {(tin.symbol, tout.symbol) for tin, tout, _ in direction_bounds(pools, moved)}
    assert ("SOL", "USDC") in touched and ("USDC", "SOL") in touched
    assert ("RAY", "JUP") not in touched  # neither its direct pools nor its hops (via SOL or USDC) use SOL/USDC
    assert len(touched) < len(list(direction_bounds(pools)))


def test_a_launch_pool_opens_at_its_price_and_the_planned_launch_is_seeded() -> None:
    token = Token("TST", "6p6xgHyF7AeE6TZkSmFsko444wqoP15icUSqi2jfGiPN", 6)
    pool = launch_pool(token, SOL, Decimal("0.0001"), Decimal("100"))
    assert pool.spot_price(token) == Decimal("0.0001")
    assert pool.reserves() == (1_000_000 * 10**6, 100 * 10**9)
    assert planned_launch(7, 1) == planned_launch(7, 1)
    assert planned_launch(7, 1)[0].mint != planned_launch(7, 2)[0].mint


def test_bounds_are_computed_only_for_the_directions_orders_wait_on() -> None:
    """The trigger engine asks only for the directions open orders wait on: the same bounds, no others."""
    pools = genesis_pools(7)
    every = {(tin.mint, tout.mint): bound for tin, tout, bound in direction_bounds(pools)}
    wanted = [(SOL.mint, USDC.mint), (BONK.mint, USDC.mint), ("not-a-listed-mint", USDC.mint)]
    some = {(tin.mint, tout.mint): bound for tin, tout, bound in direction_bounds(pools, None, wanted)}
    assert some == {d: every[d] for d in wanted[:2]}
    assert list(direction_bounds(pools, None, [])) == []
