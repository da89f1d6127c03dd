import dataclasses
import itertools
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.shares import Share
from workers.domain import ErrorCode, PermanentFailure
from workers.market import (
    SOL,
    USDC,
    USDT,
    CpmmPool,
    DlmmPool,
    InsufficientLiquidityError,
    Leg,
    NoRouteError,
    Pool,
    Route,
    best_route,
    execute,
    genesis_pools,
    route_from_json,
    to_decimal,
    venue_quotes,
    venue_quotes_and_shortfalls,
)
from workers.market.tokens import ALL_TOKENS, BONK, JITOSOL, Token
from workers.price_impact import check_price_impact

FAST = settings(max_examples=60, deadline=None, derandomize=True)

POOLS = genesis_pools(42)
BY_ID = {p.id: p for p in POOLS}
SOL_UNIT = 10**9


def price(route: Route) -> Decimal:
    return to_decimal(route.amount_out, route.token_out) / to_decimal(route.amount_in, route.token_in)


pairs = st.tuples(st.sampled_from(ALL_TOKENS), st.sampled_from(ALL_TOKENS)).filter(lambda p: p[0] != p[1])
usd_sizes = st.integers(min_value=1, max_value=3_000_000)  # order size in (about) USD


def amount_for(token: Token, usd: int) -> int:
    # A rough size in the token's base units from the SOL/USDC-centric genesis prices.
    usd_per_token = {"SOL": 170, "JitoSOL": 200, "JUP": 1, "RAY": 2, "WIF": 1}.get(token.symbol, 1)
    if token == BONK:
        return int(usd * 40_000 * 10**token.decimals)
    return max(1, int(usd * 10**token.decimals // usd_per_token))


def check_route_shape(route: Route) -> None:
    paths = route.paths
    assert sum(legs[0].amount_in for legs in paths) == route.amount_in
    assert sum(legs[-1].amount_out for legs in paths) == route.amount_out
    for index, legs in enumerate(paths):
        assert all(leg.path == index for leg in legs)
        assert legs[0].token_in == route.token_in and legs[-1].token_out == route.token_out
        assert 1 <= len(legs) <= 2
        for before, after in itertools.pairwise(legs):
            assert after.amount_in == before.amount_out and after.token_in == before.token_out
        for leg in legs:
            assert leg.amount_in > 0 and leg.amount_out > 0
            assert 0 <= leg.fee_paid <= leg.amount_in and leg.price_impact_bps >= 0
    assert route.price_impact_bps >= 0 and route.fee_bps >= 0


def test_one_sol_versus_ten_thousand():
    small = best_route(POOLS, SOL, USDC, SOL_UNIT)
    large = best_route(POOLS, SOL, USDC, 10_000 * SOL_UNIT)
    assert 150 <= price(small) <= 250
    assert small.price_impact_bps <= 1
    assert price(large) < price(small) * Decimal("0.99")
    assert large.price_impact_bps > 100


def test_small_order_uses_the_better_venue_alone():
    route = best_route(POOLS, SOL, USDC, SOL_UNIT)
    quotes = venue_quotes(POOLS, SOL, USDC, SOL_UNIT)
    assert [q.dex for q in quotes] == ["raydium", "meteora"]
    assert quotes[0].amount_out != quotes[1].amount_out  # the venues disagree
    assert not route.is_split
    assert route.amount_out == max(q.amount_out for q in quotes)
    for q in quotes:
        assert q.route.dexes == (q.dex,)
        assert (q.amount_out, q.fee_bps, q.price_impact_bps) == (
            q.route.amount_out,
            q.route.fee_bps,
            q.route.price_impact_bps,
        )


def test_large_order_splits_and_beats_each_venue_alone():
    amount = 10_000 * SOL_UNIT
    route = best_route(POOLS, SOL, USDC, amount)
    quotes = venue_quotes(POOLS, SOL, USDC, amount)
    assert route.is_split
    assert set(route.dexes) == {"raydium", "meteora"}
    assert all(route.amount_out > q.amount_out for q in quotes)
    assert sum(route.shares_bps()) == pytest.approx(10_000, abs=1)
    assert min(route.shares_bps()) > 0
    check_route_shape(route)


def test_split_is_optimal_not_fixed():
    amount = 10_000 * SOL_UNIT
    route = best_route(POOLS, SOL, USDC, amount)
    a, b = route.paths
    assert a[0].amount_in != b[0].amount_in
    for delta in (amount // 100, amount // 1000, -amount // 1000, -amount // 100):
        legs = (
            dataclasses.replace(a[0], amount_in=a[0].amount_in - delta),
            dataclasses.replace(b[0], amount_in=b[0].amount_in + delta),
        )
        moved = execute(dataclasses.replace(route, legs=legs), BY_ID)
        assert moved.amount_out <= route.amount_out


def test_multi_hop_where_no_direct_pool():
    assert not any(p.has(JITOSOL) and p.has(USDC) for p in POOLS)
    route = best_route(POOLS, JITOSOL, USDC, 10 * SOL_UNIT)
    assert [leg.token_out for leg in route.legs] == [SOL, USDC]
    check_route_shape(route)
    assert 190 <= price(route) <= 260


def test_no_route():
    only_sol_usdc = [p for p in POOLS if {p.token_x, p.token_y} == {SOL, USDC}]
    with pytest.raises(NoRouteError, match="BONK"):
        best_route(only_sol_usdc, BONK, USDT, 10**5)
    with pytest.raises(NoRouteError):
        venue_quotes(only_sol_usdc, BONK, USDT, 10**5)
    with pytest.raises(NoRouteError):
        best_route([], SOL, USDC, 1)
    with pytest.raises(NoRouteError):
        best_route(POOLS, SOL, SOL, 1)
    with pytest.raises(ValueError):
        best_route(POOLS, SOL, USDC, 0)


def test_insufficient_liquidity():
    dlmm_only = [p for p in POOLS if isinstance(p, DlmmPool) and p.has(SOL) and p.has(USDC)]
    with pytest.raises(InsufficientLiquidityError):
        best_route(dlmm_only, SOL, USDC, 10**9 * SOL_UNIT)
    assert venue_quotes(dlmm_only, SOL, USDC, 10**9 * SOL_UNIT) == []
    with pytest.raises(InsufficientLiquidityError):
        best_route(POOLS, USDC, SOL, 1)  # one micro-USDC buys nothing after fees


def test_min_amount_out():
    route = best_route(POOLS, SOL, USDC, SOL_UNIT)
    assert route.min_amount_out(0) == route.amount_out
    assert route.min_amount_out(50) == route.amount_out * 9950 // 10_000
    assert route.min_amount_out(10_000) == 0
    with pytest.raises(ValueError):
        route.min_amount_out(-1)
    with pytest.raises(ValueError):
        route.min_amount_out(10_001)


def test_execute_on_moved_pools():
    route = best_route(POOLS, SOL, USDC, 100 * SOL_UNIT)
    assert execute(route, BY_ID).amount_out == route.amount_out
    # Someone else sells 5,000 SOL first: the price we get falls, and the caller can see it against the minimum.
    dump = execute(best_route(POOLS, SOL, USDC, 5_000 * SOL_UNIT), BY_ID)
    worse = execute(route, BY_ID | dump.pools_after)
    assert worse.amount_out < route.min_amount_out(50)
    # Someone buys SOL first: we get more.
    pump = execute(best_route(POOLS, USDC, SOL, 500_000 * 10**6), BY_ID)
    assert execute(route, BY_ID | pump.pools_after).amount_out > route.amount_out


def test_execute_applies_a_pool_used_twice_in_order():
    pool = BY_ID["raydium-SOL-USDC"]
    legs = tuple(Leg(pool.id, "raydium", SOL, USDC, 1_000 * SOL_UNIT, 0, path=i) for i in range(2))
    route = Route(SOL, USDC, 2_000 * SOL_UNIT, 0, 0, 0, legs)
    first = pool.swap(SOL, 1_000 * SOL_UNIT)
    second = first.pool_after.swap(SOL, 1_000 * SOL_UNIT)
    done = execute(route, BY_ID)
    assert [leg.amount_out for leg in done.legs] == [first.amount_out, second.amount_out]
    assert done.pools_after == {pool.id: second.pool_after}
    assert BY_ID[pool.id] is pool  # the caller's pools are not touched


def test_execute_refuses_a_vanished_pool():
    route = best_route(POOLS, SOL, USDC, SOL_UNIT)
    with pytest.raises(NoRouteError):
        execute(route, {})


def test_best_route_properties() -> None:
    share = Share()

    @FAST
    @given(pairs, usd_sizes)
    def examples(pair, usd) -> None:
        share.tried += 1
        token_in, token_out = pair
        amount = amount_for(token_in, usd)
        try:
            route = best_route(POOLS, token_in, token_out, amount)
        except InsufficientLiquidityError:
            assert all(q.amount_out == 0 for q in venue_quotes(POOLS, token_in, token_out, amount))
            return
        share.checked += 1
        check_route_shape(route)
        # Never worse than the best venue alone.
        quotes = venue_quotes(POOLS, token_in, token_out, amount)
        assert route.amount_out >= max((q.amount_out for q in quotes), default=0)
        for q in quotes:
            check_route_shape(q.route)
        # Replaying the route on the pools it was quoted on gives exactly the quote.
        done = execute(route, BY_ID)
        assert done.amount_out == route.amount_out
        assert done.legs == route.legs
        # JSON round trip.
        text = json.dumps(route.to_json())
        assert route_from_json(json.loads(text)) == route
        assert json.dumps(route_from_json(json.loads(text)).to_json()) == text

    examples()
    share.assert_at_least(0.75)


@FAST
@given(st.integers(min_value=10**6, max_value=20_000 * SOL_UNIT), st.integers(min_value=0, max_value=2**32))
def test_split_never_pays_less_than_a_venue_on_random_markets(amount, seed):
    pools: list[Pool] = [p for p in genesis_pools(seed) if {p.token_x, p.token_y} == {SOL, USDC}]
    route = best_route(pools, SOL, USDC, amount)
    quotes = venue_quotes(pools, SOL, USDC, amount)
    assert route.amount_out >= max(q.amount_out for q in quotes)
    if route.is_split:
        assert route.amount_out > max(q.amount_out for q in quotes) + 1


@FAST
@given(st.integers(min_value=10**6, max_value=5_000 * SOL_UNIT), st.sampled_from(["raydium", "meteora"]))
def test_round_trip_on_the_same_pools_never_creates_value(amount, dex):
    # Across venues a round trip can profit (the venues are apart: that is arbitrage); on the same pools never.
    venue = [p for p in POOLS if p.dex == dex]
    there = best_route(venue, SOL, USDC, amount)
    moved = {p.id: p for p in venue} | execute(there, BY_ID).pools_after
    back = best_route(list(moved.values()), USDC, SOL, there.amount_out)
    assert back.amount_out < amount


def test_cpmm_only_market_with_two_equal_pools_splits_evenly():
    a = CpmmPool("a", SOL, USDC, 1000 * SOL_UNIT, 170_000 * 10**6)
    b = dataclasses.replace(a, id="b")
    route = best_route([a, b], SOL, USDC, 500 * SOL_UNIT)
    assert route.is_split
    assert abs(route.shares_bps()[0] - 5000) <= 1


@FAST
@given(
    st.integers(min_value=SOL_UNIT, max_value=2_000 * SOL_UNIT),
    st.integers(min_value=SOL_UNIT, max_value=5_000 * SOL_UNIT),
)
def test_a_pool_moved_against_us_pays_less(amount, dump_amount):
    route = best_route(POOLS, SOL, USDC, amount)
    dump = execute(best_route(POOLS, SOL, USDC, dump_amount), BY_ID)
    assert execute(route, BY_ID | dump.pools_after).amount_out <= route.amount_out


def test_an_execution_on_unchanged_pools_has_the_routes_price_impact() -> None:
    pools = genesis_pools(42)
    route = best_route(pools, SOL, USDC, 10_000 * 10**9)
    assert route.is_split and route.price_impact_bps > 0
    assert execute(route, {p.id: p for p in pools}).price_impact_bps == route.price_impact_bps


def test_price_impact_guard_names_the_impact_and_the_limit() -> None:
    check_price_impact(1000, 1000, "quoted now,")  # at the limit is allowed
    with pytest.raises(PermanentFailure) as refused:
        check_price_impact(9999, 1000, "quoted now,")
    assert refused.value.code == ErrorCode.PRICE_IMPACT_TOO_HIGH
    assert "by 9999 bps (99.99%)" in refused.value.message and "limit of 1000 bps" in refused.value.message


def test_venues_without_a_quote_say_why() -> None:
    pools = genesis_pools(42)
    quotes, unquoted = venue_quotes_and_shortfalls(pools, SOL, USDC, 10_000_000 * 10**9)
    assert [q.dex for q in quotes] == ["raydium"]
    assert [(u.dex, "cannot fill 10000000 SOL alone" in u.reason) for u in unquoted] == [("meteora", True)]
    assert venue_quotes_and_shortfalls(pools, SOL, USDC, 10**9)[1] == []
