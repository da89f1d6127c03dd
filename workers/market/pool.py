"""What every venue's pool offers the router: a pure swap on immutable state, a spot price, and JSON state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal

from workers.market.tokens import Token

Dex = Literal["raydium", "meteora"]
DEXES: tuple[Dex, ...] = ("raydium", "meteora")

BPS = 10_000


class InsufficientLiquidityError(ValueError):
    """The pool (or the whole market) cannot fill the amount, or the output would round to nothing."""


@dataclass(frozen=True, slots=True)
class SwapResult:
    amount_in: int
    amount_out: int
    fee_paid: int  # in token_in base units, part of amount_in
    fee_bps: int  # effective fee over amount_in
    price_impact_bps: int  # execution price (fee excluded) vs the spot price before the swap
    pool_after: Pool


class Pool(ABC):
    """Immutable pool state; subclasses are frozen dataclasses, so equal state means equal pool."""

    __slots__ = ()

    dex: ClassVar[Dex]
    id: str
    token_x: Token
    token_y: Token

    @abstractmethod
    def swap(self, token_in: Token, amount_in: int) -> SwapResult:
        """Sells exactly `amount_in` of `token_in`. Pure: new state in `pool_after`, `self` unchanged.

        Raises ValueError for a token the pool does not hold or amount_in <= 0, and InsufficientLiquidityError
        when the pool cannot fill it or the output would be zero.
        """

    @abstractmethod
    def quote_out(self, token_in: Token, amount_in: int) -> int | None:
        """The `amount_out` that `swap` would give (possibly 0), or None if the pool cannot fill it.

        The router's inner loop: it builds no new state and raises nothing, so is far cheaper than `swap`.
        """

    @abstractmethod
    def spot_price(self, base: Token) -> Decimal:
        """Whole units of the other token per whole `base` token at the current marginal price (no fee)."""

    @abstractmethod
    def reserves(self) -> tuple[int, int]:
        """Total (x, y) liquidity in base units."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Full state; `pool_from_json(p.to_json()) == p`. Tokens by symbol, amounts as JSON integers."""

    def has(self, token: Token) -> bool:
        # By mint, which names one token in a process (`register_token`): routing asks this a few hundred times
        # per route, and two string compares cost less than two dataclass compares (best_route 77 -> 69 us).
        mint = token.mint
        return mint == self.token_x.mint or mint == self.token_y.mint

    def other(self, token: Token) -> Token:
        if token == self.token_x:
            return self.token_y
        if token == self.token_y:
            return self.token_x
        raise ValueError(f"pool {self.id} does not hold {token.symbol}")

    def _sells_x(self, token_in: Token, amount_in: int) -> bool:
        """Validates a swap request; True when token_in is X (so the pool pays out Y)."""
        if amount_in <= 0:
            raise ValueError(f"amount_in must be positive, got {amount_in}")
        if token_in == self.token_x:
            return True
        if token_in == self.token_y:
            return False
        raise ValueError(f"pool {self.id} does not hold {token_in.symbol}")


def impact_bps(amount_out: int, net_in: int, spot_num: int, spot_den: int) -> int:
    """1 - (amount_out / net_in) / (spot_num / spot_den), in bps, rounded half up, never negative.

    Pool rounding can make a tiny trade look a hair better than spot; that is noise, not negative impact.
    """
    ideal = net_in * spot_num
    if ideal <= 0:
        return 0
    shortfall = ideal - amount_out * spot_den
    return max(0, (2 * shortfall * BPS + ideal) // (2 * ideal))


def ratio_bps(part: int, whole: int) -> int:
    """part / whole in bps, rounded half up."""
    return (2 * part * BPS + whole) // (2 * whole) if whole > 0 else 0
