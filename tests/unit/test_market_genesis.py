import json
from decimal import Decimal

from workers.market import DlmmPool, genesis_pools
from workers.market.pool import DEXES
from workers.market.tokens import ALL_TOKENS, JITOSOL, SOL, USDC, USDT


def dump(seed: int) -> str:
    return json.dumps([p.to_json() for p in genesis_pools(seed)], sort_keys=True)


def test_same_seed_same_market_and_different_seeds_differ():
    assert dump(7) == dump(7)
    assert dump(7) != dump(8)
    assert [p.id for p in genesis_pools(7)] == [p.id for p in genesis_pools(8)]


def test_realistic_prices_and_venues_a_little_apart():
    for seed in range(20):
        pools = genesis_pools(seed)
        sol_usdc = [p for p in pools if {p.token_x, p.token_y} == {SOL, USDC}]
        assert sorted(p.dex for p in sol_usdc) == sorted(DEXES)
        prices = [p.spot_price(SOL) for p in sol_usdc]
        assert all(150 <= price <= 250 for price in prices)
        assert prices[0] != prices[1]
        assert abs(prices[0] / prices[1] - 1) < Decimal("0.03")


def test_coverage_of_pairs_and_venues():
    pools = genesis_pools(1)
    ids = {p.id for p in pools}
    for pair in ("SOL-USDC", "SOL-USDT", "USDC-USDT"):
        assert {f"raydium-{pair}", f"meteora-{pair}"} <= ids
    tokens = {t for p in pools for t in (p.token_x, p.token_y)}
    assert tokens == set(ALL_TOKENS)
    # JitoSOL trades on one venue only and needs a hop to reach the dollars.
    assert {p.dex for p in pools if p.has(JITOSOL)} == {"meteora"}
    assert not any(p.has(JITOSOL) and (p.has(USDC) or p.has(USDT)) for p in pools)


def test_dlmm_bins_follow_the_convention():
    for p in genesis_pools(3):
        if not isinstance(p, DlmmPool):
            continue
        for i, (x, y) in enumerate(zip(p.bins_x, p.bins_y, strict=True)):
            bin_id = p.lower_bin_id + i
            assert x == 0 or bin_id >= p.active_id
            assert y == 0 or bin_id <= p.active_id
        assert p.bin(p.active_id) != (0, 0)
