"""New tokens: a launchpad graduating a token to a Raydium CPMM pool, as `orderengine market launch` does. Pure."""

from __future__ import annotations

import random
from decimal import Decimal

import base58

from workers.market.raydium import CpmmPool
from workers.market.tokens import SOL, Token

DEFAULT_DECIMALS = 6
# A fresh launch's usual size: 100 SOL against the supply at 0.0001 SOL per token.
DEFAULT_PRICE = Decimal("0.0001")
DEFAULT_LIQUIDITY = Decimal("100")


def launch_pool(token: Token, paired: Token, price: Decimal, liquidity: Decimal) -> CpmmPool:
    """A CPMM pool holding `liquidity` of `paired` against the tokens worth as much at `price` (paired per token)."""
    if price <= 0 or liquidity <= 0:
        raise ValueError("price and liquidity must be positive")
    reserve_y = int(liquidity.scaleb(paired.decimals))
    reserve_x = int((liquidity / price).scaleb(token.decimals))
    return CpmmPool(
        id=f"raydium-{token.symbol}-{paired.symbol}",
        token_x=token,
        token_y=paired,
        reserve_x=reserve_x,
        reserve_y=reserve_y,
    )


def planned_launch(seed: int, interval: int) -> tuple[Token, Decimal]:
    """The token the market launches by itself in `interval` (MARKET_LAUNCH_SECONDS), the same in every process:
    a seeded mint and symbol, and its opening price in SOL."""
    rng = random.Random(f"launch|{seed}|{interval}")
    mint = base58.b58encode(rng.randbytes(32)).decode()
    token = Token(f"NEW{interval % 100_000:05d}", mint, DEFAULT_DECIMALS)
    return token, DEFAULT_PRICE * Decimal(rng.randint(5, 20)) / 10


__all__ = ["DEFAULT_DECIMALS", "DEFAULT_LIQUIDITY", "DEFAULT_PRICE", "SOL", "launch_pool", "planned_launch"]
