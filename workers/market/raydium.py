"""Raydium's constant-product pool (CPMM): x * y = k, fee taken from the input and left in the pool."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar

from workers.market.pool import Dex, InsufficientLiquidityError, Pool, SwapResult, impact_bps, ratio_bps
from workers.market.tokens import Token, resolve_token

FEE_RATE_DENOMINATOR = 1_000_000
# Raydium CPMM's standard trade fee tier: 2500 / 1e6 = 0.25%.
STANDARD_FEE_RATE = 2_500


@dataclass(frozen=True, slots=True)
class CpmmPool(Pool):
    dex: ClassVar[Dex] = "raydium"

    id: str
    token_x: Token
    token_y: Token
    reserve_x: int
    reserve_y: int
    fee_rate: int = STANDARD_FEE_RATE  # per FEE_RATE_DENOMINATOR

    def __post_init__(self) -> None:
        if self.token_x == self.token_y:
            raise ValueError("a pool needs two different tokens")
        if self.reserve_x <= 0 or self.reserve_y <= 0:
            raise ValueError(f"pool {self.id}: reserves must be positive")
        if not 0 <= self.fee_rate < FEE_RATE_DENOMINATOR:
            raise ValueError(f"pool {self.id}: fee rate out of range")

    def _fee(self, amount_in: int) -> int:
        # Rounded up, as on chain: the pool never undercharges.
        return -(-amount_in * self.fee_rate // FEE_RATE_DENOMINATOR)

    def quote_out(self, token_in: Token, amount_in: int) -> int:
        # Never None: a constant-product pool can always pay something (possibly 0), never all of its reserve.
        sells_x = self._sells_x(token_in, amount_in)
        r_in, r_out = (self.reserve_x, self.reserve_y) if sells_x else (self.reserve_y, self.reserve_x)
        net = amount_in - self._fee(amount_in)
        # Floor: rounding goes to the pool, so k can only grow.
        return net * r_out // (r_in + net)

    def swap(self, token_in: Token, amount_in: int) -> SwapResult:
        sells_x = self._sells_x(token_in, amount_in)
        r_in, r_out = (self.reserve_x, self.reserve_y) if sells_x else (self.reserve_y, self.reserve_x)
        fee = self._fee(amount_in)
        net = amount_in - fee
        out = net * r_out // (r_in + net)
        if out <= 0:
            raise InsufficientLiquidityError(
                f"{amount_in} base units of {token_in.symbol} buy nothing from pool {self.id}"
            )
        # The whole input (fee included) stays in the pool: the fee accrues to liquidity providers as k grows.
        new_in, new_out = r_in + amount_in, r_out - out
        after = (
            replace(self, reserve_x=new_in, reserve_y=new_out)
            if sells_x
            else replace(self, reserve_x=new_out, reserve_y=new_in)
        )
        return SwapResult(
            amount_in=amount_in,
            amount_out=out,
            fee_paid=fee,
            fee_bps=ratio_bps(fee, amount_in),
            price_impact_bps=impact_bps(out, net, r_out, r_in),
            pool_after=after,
        )

    def spot_price(self, base: Token) -> Decimal:
        x = Decimal(self.reserve_x).scaleb(-self.token_x.decimals)
        y = Decimal(self.reserve_y).scaleb(-self.token_y.decimals)
        if base == self.token_x:
            return y / x
        if base == self.token_y:
            return x / y
        raise ValueError(f"pool {self.id} does not hold {base.symbol}")

    def reserves(self) -> tuple[int, int]:
        return self.reserve_x, self.reserve_y

    def to_json(self) -> dict[str, Any]:
        return {
            "dex": self.dex,
            "id": self.id,
            "token_x": self.token_x.symbol,
            "token_y": self.token_y.symbol,
            "reserve_x": self.reserve_x,
            "reserve_y": self.reserve_y,
            "fee_rate": self.fee_rate,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CpmmPool:
        return cls(
            id=str(d["id"]),
            token_x=resolve_token(d["token_x"]),
            token_y=resolve_token(d["token_y"]),
            reserve_x=int(d["reserve_x"]),
            reserve_y=int(d["reserve_y"]),
            fee_rate=int(d["fee_rate"]),
        )
