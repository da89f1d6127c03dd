import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.shares import Share
from workers.market.codec import pool_from_json
from workers.market.pool import InsufficientLiquidityError
from workers.market.raydium import CpmmPool
from workers.market.tokens import SOL, USDC, USDT

FAST = settings(max_examples=150, deadline=None, derandomize=True)

reserves = st.integers(min_value=10**3, max_value=10**18)
amounts = st.integers(min_value=1, max_value=10**18)


def pool(x: int = 50_000 * 10**9, y: int = 8_500_000 * 10**6) -> CpmmPool:
    return CpmmPool(id="raydium-SOL-USDC", token_x=SOL, token_y=USDC, reserve_x=x, reserve_y=y)


def test_standard_fee_is_25_bps_and_output_rounds_down():
    p = pool()
    r = p.swap(SOL, 10**9)
    assert r.fee_paid == 2_500_000 and r.fee_bps == 25
    net = 10**9 - r.fee_paid
    assert r.amount_out == net * p.reserve_y // (p.reserve_x + net)
    assert r.pool_after.reserves() == (p.reserve_x + 10**9, p.reserve_y - r.amount_out)
    assert p.reserves() == (50_000 * 10**9, 8_500_000 * 10**6)  # pure: unchanged
    assert r.price_impact_bps == 0  # 1 SOL in a 50k SOL pool


def test_spot_price_in_whole_tokens():
    assert pool().spot_price(SOL) == 170
    assert pool().spot_price(USDC) * 170 == pytest.approx(1)


def test_bad_requests():
    with pytest.raises(ValueError):
        pool().swap(SOL, 0)
    with pytest.raises(ValueError):
        pool().swap(USDT, 10)
    with pytest.raises(InsufficientLiquidityError):
        pool().swap(USDC, 1)  # 1 micro-USDC buys nothing after the fee


def test_k_never_decreases_and_output_below_reserve() -> None:
    share = Share()

    @FAST
    @given(reserves, reserves, amounts, st.booleans())
    def examples(x, y, amount, sell_x) -> None:
        share.tried += 1
        p = pool(x, y)
        token_in = SOL if sell_x else USDC
        try:
            r = p.swap(token_in, amount)
        except InsufficientLiquidityError:
            assert p.quote_out(token_in, amount) == 0
            return
        share.checked += 1
        after = r.pool_after
        assert isinstance(after, CpmmPool)
        assert after.reserve_x * after.reserve_y >= x * y
        assert 0 < r.amount_out < (y if sell_x else x)
        assert after.reserve_x > 0 and after.reserve_y > 0
        assert 0 <= r.fee_paid <= amount
        assert r.price_impact_bps >= 0
        assert p.quote_out(token_in, amount) == r.amount_out

    examples()
    share.assert_at_least(0.75)


@FAST
@given(reserves, reserves, amounts, amounts, st.booleans())
def test_output_grows_weakly_with_input(x, y, a, b, sell_x):
    p = pool(x, y)
    token_in = SOL if sell_x else USDC
    small, large = sorted((a, b))
    assert p.quote_out(token_in, small) <= p.quote_out(token_in, large)


def test_round_trip_never_creates_value() -> None:
    share = Share()

    @FAST
    @given(reserves, reserves, amounts, st.booleans())
    def examples(x, y, amount, sell_x) -> None:
        share.tried += 1
        p = pool(x, y)
        token_in, token_out = (SOL, USDC) if sell_x else (USDC, SOL)
        try:
            there = p.swap(token_in, amount)
            back = there.pool_after.swap(token_out, there.amount_out)
        except InsufficientLiquidityError:
            return
        share.checked += 1
        assert back.amount_out < amount

    examples()
    share.assert_at_least(0.75)


@FAST
@given(reserves, reserves, amounts)
def test_json_round_trip(x, y, amount):
    p = pool(x, y)
    for state in (p, p.swap(SOL, amount).pool_after if p.quote_out(SOL, amount) else p):
        text = json.dumps(state.to_json())
        assert pool_from_json(json.loads(text)) == state
        assert json.dumps(pool_from_json(json.loads(text)).to_json()) == text
