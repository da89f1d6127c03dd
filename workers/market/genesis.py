"""The market at the start of time: both venues' pools with realistic prices and depths, fixed by a seed.

The seed moves the fair prices by a few percent and each pool's price and depth a little around them, so that
the two venues quote a little apart, as real venues do. Some pairs exist on one venue only (RAY, WIF,
JitoSOL), and some only through a hop (JitoSOL to USDC goes via SOL). Everything is integer or Decimal
arithmetic on `random.Random(seed)` integers: the same seed gives byte-identical pools on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal, localcontext

from workers.market.meteora import ONE_Q64, DlmmPool, bin_id_for_price, bin_price_q64
from workers.market.pool import Pool
from workers.market.raydium import CpmmPool
from workers.market.tokens import BONK, JITOSOL, JUP, RAY, SOL, USDC, USDT, WIF, Token

# Fair USD prices before the seed's move, and how far (bps) the seed may move each.
_FAIR_USD: tuple[tuple[Token, str, int], ...] = (
    (SOL, "172", 500),
    (USDC, "1", 0),
    (USDT, "1.0001", 5),
    (JUP, "0.85", 500),
    (BONK, "0.000024", 500),
    (RAY, "2.4", 500),
    (WIF, "1.1", 500),
)
# JitoSOL accrues staking yield: priced from SOL, not on its own.
_JITOSOL_PER_SOL = Decimal("1.19")


@dataclass(frozen=True, slots=True)
class _Cpmm:
    base: Token
    quote: Token
    depth_usd: int  # per side
    jitter_bps: int


@dataclass(frozen=True, slots=True)
class _Dlmm:
    base: Token
    quote: Token
    depth_usd: int  # both sides together
    jitter_bps: int
    bin_step: int
    base_factor: int  # base fee = base_factor * bin_step / 1e8
    variable_fee_control: int
    half_width: int  # bins on each side of the active one
    sigma: int  # bins at which liquidity per bin halves


_POOLS: tuple[_Cpmm | _Dlmm, ...] = (
    _Cpmm(SOL, USDC, 15_000_000, 50),
    _Dlmm(
        SOL,
        USDC,
        6_000_000,
        50,
        bin_step=10,
        base_factor=8_000,
        variable_fee_control=40_000,
        half_width=300,
        sigma=50,
    ),
    _Cpmm(SOL, USDT, 2_000_000, 50),
    _Dlmm(
        SOL,
        USDT,
        2_000_000,
        50,
        bin_step=10,
        base_factor=10_000,
        variable_fee_control=40_000,
        half_width=200,
        sigma=40,
    ),
    _Cpmm(USDC, USDT, 3_000_000, 5),
    _Dlmm(
        USDC,
        USDT,
        6_000_000,
        3,
        bin_step=1,
        base_factor=10_000,
        variable_fee_control=2_000_000,
        half_width=60,
        sigma=8,
    ),
    _Cpmm(RAY, SOL, 1_500_000, 100),
    _Cpmm(RAY, USDC, 600_000, 100),
    _Cpmm(JUP, SOL, 1_200_000, 100),
    _Dlmm(
        JUP,
        USDC,
        1_500_000,
        100,
        bin_step=20,
        base_factor=10_000,
        variable_fee_control=10_000,
        half_width=150,
        sigma=30,
    ),
    _Cpmm(BONK, SOL, 1_500_000, 100),
    _Dlmm(
        BONK,
        SOL,
        1_200_000,
        100,
        bin_step=80,
        base_factor=2_500,
        variable_fee_control=625,
        half_width=80,
        sigma=15,
    ),
    _Dlmm(
        JITOSOL,
        SOL,
        4_000_000,
        10,
        bin_step=1,
        base_factor=10_000,
        variable_fee_control=2_000_000,
        half_width=80,
        sigma=10,
    ),
    _Cpmm(WIF, SOL, 1_000_000, 100),
)


def _moved(rng: random.Random, price: Decimal, max_bps: int) -> Decimal:
    return price * (10_000 + rng.randint(-max_bps, max_bps)) / 10_000


def genesis_pools(seed: int) -> list[Pool]:
    rng = random.Random(seed)
    with localcontext() as ctx:
        ctx.prec = 60
        usd = {token: _moved(rng, Decimal(text), bps) for token, text, bps in _FAIR_USD}
        usd[JITOSOL] = usd[SOL] * _JITOSOL_PER_SOL
        pools: list[Pool] = []
        for spec in _POOLS:
            # Y (quote) whole units per X (base) whole unit, nudged per pool so that venues disagree a little.
            price = _moved(rng, usd[spec.base] / usd[spec.quote], spec.jitter_bps)
            depth = Decimal(spec.depth_usd) * (100 + rng.randint(-10, 10)) / 100
            if isinstance(spec, _Cpmm):
                pools.append(_cpmm(spec, price, depth / usd[spec.base]))
            else:
                pools.append(_dlmm(spec, price, depth / usd[spec.quote]))
    return pools


def _units(amount: Decimal, token: Token) -> int:
    return int(amount.scaleb(token.decimals))


def _cpmm(spec: _Cpmm, price: Decimal, base_amount: Decimal) -> CpmmPool:
    return CpmmPool(
        id=f"raydium-{spec.base.symbol}-{spec.quote.symbol}",
        token_x=spec.base,
        token_y=spec.quote,
        reserve_x=_units(base_amount, spec.base),
        reserve_y=_units(base_amount * price, spec.quote),
    )


def _dlmm(spec: _Dlmm, price: Decimal, quote_value: Decimal) -> DlmmPool:
    price_q64 = int(price.scaleb(spec.quote.decimals - spec.base.decimals) * ONE_Q64)
    active = bin_id_for_price(spec.bin_step, price_q64)
    total_y = _units(quote_value, spec.quote)
    sigma2 = spec.sigma * spec.sigma
    offsets = range(-spec.half_width, spec.half_width + 1)
    # A bell of liquidity around the price (Cauchy-shaped: heavy tails keep some depth far out).
    weights = [sigma2 * 1_000_000 // (sigma2 + d * d) for d in offsets]
    total_weight = sum(weights)
    bins_x: list[int] = []
    bins_y: list[int] = []
    for d, weight in zip(offsets, weights, strict=True):
        value = total_y * weight // total_weight  # in Y base units
        p = bin_price_q64(spec.bin_step, active + d)
        if d < 0:
            bins_x.append(0)
            bins_y.append(value)
        elif d > 0:
            bins_x.append((value << 64) // p)
            bins_y.append(0)
        else:
            bins_x.append(((value - value // 2) << 64) // p)
            bins_y.append(value // 2)
    return DlmmPool(
        id=f"meteora-{spec.base.symbol}-{spec.quote.symbol}",
        token_x=spec.base,
        token_y=spec.quote,
        bin_step=spec.bin_step,
        active_id=active,
        lower_bin_id=active - spec.half_width,
        bins_x=tuple(bins_x),
        bins_y=tuple(bins_y),
        base_factor=spec.base_factor,
        variable_fee_control=spec.variable_fee_control,
    )
