"""The price-impact guard: an order may not move the price by itself further than its `max_price_impact_bps`.

Slippage protects an order against the market moving between its quote and its settlement; it cannot protect the
market, or the client, from an order whose own quote is ruinous (one order selling a billion SOL into the pools
confirmed at 0.01 USDC/SOL). The same check runs before the order is stored, when it is routed and at settlement.
"""

from __future__ import annotations

from workers.domain import ErrorCode, PermanentFailure


def check_price_impact(impact_bps: int, limit_bps: int, when: str) -> None:
    """Raises PRICE_IMPACT_TOO_HIGH naming the impact and the limit; `when` says at which step it was measured."""
    if impact_bps > limit_bps:
        raise PermanentFailure(
            ErrorCode.PRICE_IMPACT_TOO_HIGH,
            f"{when} the order would move the price by {impact_bps} bps ({impact_bps / 100:.2f}%), above its limit "
            f"of {limit_bps} bps (max_price_impact_bps; 0 means 1000): trade a smaller amount, or raise the limit",
        )
