import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.unit.shares import Share
from workers.market.codec import pool_from_json
from workers.market.meteora import FEE_PRECISION, ONE_Q64, DlmmPool, bin_id_for_price, bin_price_q64
from workers.market.pool import InsufficientLiquidityError
from workers.market.tokens import SOL, USDC, Token

FAST = settings(max_examples=150, deadline=None, derandomize=True)

reserve = st.one_of(st.just(0), st.integers(min_value=1, max_value=10**15))


@st.composite
def dlmm_pools(draw: st.DrawFn) -> DlmmPool:
    bin_step = draw(st.sampled_from([1, 5, 10, 25, 80, 100]))
    left = draw(st.lists(reserve, max_size=10))
    right = draw(st.lists(reserve, max_size=10))
    active = draw(st.integers(min_value=-2000, max_value=2000))
    return DlmmPool(
        id="meteora-SOL-USDC",
        token_x=SOL,
        token_y=USDC,
        bin_step=bin_step,
        active_id=active,
        lower_bin_id=active - len(left),
        bins_x=(0,) * len(left) + (draw(reserve),) + tuple(right),
        bins_y=tuple(left) + (draw(reserve),) + (0,) * len(right),
        volatility_accumulator=draw(st.integers(min_value=0, max_value=400_000)),
    )


@st.composite
def fillable_swaps(draw: st.DrawFn) -> tuple[DlmmPool, int, bool]:
    """A pool, an amount and a side such that the pool holds what the swap pays out: (mostly) one it can fill.

    Selling X walks the price down from the active bin, so the X that drains all Y is at least total_y / price
    there; a fraction of that is always within the pool's depth (likewise for Y). Drawing amounts blind, most
    examples asked for more than the pool holds and left before the checks.
    """
    p = draw(dlmm_pools())
    total_x, total_y = p.reserves()
    sides = [sell_x for sell_x, out in ((True, total_y), (False, total_x)) if out > 0]
    assume(sides)
    sell_x = draw(st.sampled_from(sides))
    price = bin_price_q64(p.bin_step, p.active_id)
    depth_in = (total_y << 64) // price if sell_x else (total_x * price) >> 64
    assume(depth_in > 0)
    amount = max(1, depth_in * draw(st.integers(min_value=1, max_value=999)) // 1000)
    return p, amount, sell_x


def bins(p: DlmmPool) -> dict[int, tuple[int, int]]:
    return {p.lower_bin_id + i: (x, y) for i, (x, y) in enumerate(zip(p.bins_x, p.bins_y, strict=True))}


def side_invariant(p: DlmmPool) -> None:
    for bin_id, (x, y) in bins(p).items():
        if bin_id < p.active_id:
            assert x == 0, f"bin {bin_id} left of active {p.active_id} holds X"
        if bin_id > p.active_id:
            assert y == 0, f"bin {bin_id} right of active {p.active_id} holds Y"


def simple_pool(size: int = 1000, **changes: int) -> DlmmPool:
    fields = {"bin_step": 10, "active_id": 0, "lower_bin_id": -2}
    fields.update(changes)
    return DlmmPool(
        id="m",
        token_x=SOL,
        token_y=USDC,
        bins_x=(0, 0, size, size, size),
        bins_y=(size, size, size, 0, 0),
        **fields,
    )


def test_bin_prices():
    assert bin_price_q64(10, 0) == ONE_Q64
    assert bin_price_q64(10, 1) == ONE_Q64 * 10010 // 10000
    assert bin_price_q64(10, -1) == ONE_Q64 * 10000 // 10010
    for price in (10**6, ONE_Q64 // 7, ONE_Q64 * 170, ONE_Q64 * 10**9):
        i = bin_id_for_price(10, price)
        assert bin_price_q64(10, i) <= price < bin_price_q64(10, i + 1)


def test_walks_bins_at_their_prices():
    p = simple_pool(base_factor=0, variable_fee_control=0)
    r = p.swap(USDC, 1500)  # buys all X of bin 0 (price 1), then half of bin 1 (price 1.001)
    after = r.pool_after
    assert isinstance(after, DlmmPool)
    assert after.active_id == 1
    assert bins(after)[0] == (0, 2000)
    assert r.amount_out == 1000 + 499
    assert r.price_impact_bps > 0
    with pytest.raises(InsufficientLiquidityError):
        p.swap(USDC, 10**9)  # more than every bin on the right holds


def test_fee_is_base_plus_variable_and_grows_with_volatility():
    p = simple_pool()
    assert p.fee_rate(0) == 10_000 * 10 * 10  # base: 0.1% for bin step 10
    assert p.fee_rate(0) < p.fee_rate(100_000) < p.fee_rate(300_000)
    assert p.fee_rate(10**9) == FEE_PRECISION // 10  # capped at 10%
    calm = simple_pool(10**9).swap(USDC, 10**6)
    stirred = simple_pool(10**9, volatility_accumulator=300_000).swap(USDC, 10**6)
    assert stirred.fee_paid > calm.fee_paid
    assert stirred.amount_out < calm.amount_out


def test_volatility_accumulates_across_bins_and_decays():
    p = simple_pool()
    crossed = p.swap(USDC, 2500).pool_after
    assert isinstance(crossed, DlmmPool)
    assert crossed.volatility_accumulator == 2 * 10_000  # two bins from the reference
    assert crossed.tick(10) == crossed  # within the filter period: nothing
    assert crossed.tick(30).volatility_accumulator == 10_000
    assert crossed.tick(60).volatility_accumulator == 5_000
    assert crossed.tick(600).volatility_accumulator == 0


def test_swap_walks_bins_consistently() -> None:
    share = Share()

    @FAST
    @given(fillable_swaps())
    def examples(swap) -> None:
        p, amount, sell_x = swap
        share.tried += 1
        token_in: Token = SOL if sell_x else USDC
        try:
            r = p.swap(token_in, amount)
        except InsufficientLiquidityError:
            assert not p.quote_out(token_in, amount)
            return
        share.checked += 1
        after = r.pool_after
        assert isinstance(after, DlmmPool)
        assert p.quote_out(token_in, amount) == r.amount_out
        side_invariant(after)
        # Selling X walks down in price, selling Y walks up.
        if sell_x:
            assert after.active_id <= p.active_id
        else:
            assert after.active_id >= p.active_id
        lo, hi = sorted((p.active_id, after.active_id))
        before_bins, after_bins = bins(p), bins(after)
        out_side = 1 if sell_x else 0
        for bin_id, old in before_bins.items():
            new = after_bins[bin_id]
            if old[out_side] == 0 or not lo <= bin_id <= hi:
                assert new == old, f"bin {bin_id} changed but was empty or outside the walk"
            elif bin_id != after.active_id:
                assert new[out_side] == 0, f"bin {bin_id} skipped with liquidity left"
            # Constant sum at the bin's price: its value never falls.
            price = bin_price_q64(p.bin_step, bin_id)
            assert new[0] * price + new[1] * ONE_Q64 >= old[0] * price + old[1] * ONE_Q64
            assert new[0] >= 0 and new[1] >= 0
        # Conservation: out reserve falls by exactly the output, in reserve + fees rise by exactly the input.
        total_x, total_y = p.reserves()
        new_x, new_y = after.reserves()
        if sell_x:
            assert total_y - new_y == r.amount_out <= total_y
            assert new_x + after.fees_x - total_x - p.fees_x == amount
        else:
            assert total_x - new_x == r.amount_out <= total_x
            assert new_y + after.fees_y - total_y - p.fees_y == amount
        assert r.amount_out > 0 and 0 <= r.fee_paid <= amount and r.price_impact_bps >= 0

    examples()
    share.assert_at_least(0.75)


@FAST
@given(dlmm_pools(), st.integers(min_value=1, max_value=10**16), st.integers(min_value=1, max_value=10**16))
def test_output_grows_weakly_with_input(p, a, b):
    small, large = sorted((a, b))
    for token in (SOL, USDC):
        out_small, out_large = p.quote_out(token, small), p.quote_out(token, large)
        if out_large is not None:
            assert out_small is not None and out_small <= out_large


def test_round_trip_never_creates_value() -> None:
    share = Share()

    @FAST
    @given(fillable_swaps())
    def examples(swap) -> None:
        p, amount, sell_x = swap
        share.tried += 1
        token_in, token_out = (SOL, USDC) if sell_x else (USDC, SOL)
        try:
            there = p.swap(token_in, amount)
            back = there.pool_after.swap(token_out, there.amount_out)
        except InsufficientLiquidityError:
            return
        share.checked += 1
        assert back.amount_out <= amount

    examples()
    share.assert_at_least(0.75)


@FAST
@given(dlmm_pools(), st.integers(min_value=1, max_value=10**16))
def test_json_round_trip(p, amount):
    states = [p]
    if p.quote_out(USDC, amount):
        states.append(p.swap(USDC, amount).pool_after)
    for state in states:
        text = json.dumps(state.to_json())
        assert pool_from_json(json.loads(text)) == state
        assert json.dumps(pool_from_json(json.loads(text)).to_json()) == text


def test_spot_price_carries_decimals():
    # 0.17 micro-USDC per lamport is 170 USDC per SOL.
    bin_id = bin_id_for_price(10, ONE_Q64 * 17 // 100)
    p = DlmmPool("m", SOL, USDC, 10, bin_id, bin_id, (10**9,), (10**6,))
    assert 169.8 < p.spot_price(SOL) <= 170
    assert p.spot_price(USDC) * p.spot_price(SOL) == pytest.approx(1)


@FAST
@given(dlmm_pools(), st.lists(st.integers(min_value=1, max_value=10**16), min_size=1, max_size=8), st.booleans())
def test_memoised_quotes_match_a_fresh_pool(p, amounts, sell_x):
    # The same pool object answers many quotes from a memo it extends as amounts grow; a fresh copy has none.
    token_in = SOL if sell_x else USDC
    for amount in amounts:
        fresh = pool_from_json(p.to_json())
        assert p.quote_out(token_in, amount) == fresh.quote_out(token_in, amount)
        try:
            assert p.swap(token_in, amount) == fresh.swap(token_in, amount)
        except InsufficientLiquidityError:
            with pytest.raises(InsufficientLiquidityError):
                fresh.swap(token_in, amount)
    assert pool_from_json(p.to_json()) == p
