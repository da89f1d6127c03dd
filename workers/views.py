"""Routes and prices as people read them: decimal strings in whole tokens, the shape of SPEC's `Route`."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from workers.market import Leg, Route, Token, format_amount, to_decimal


def leg_view(leg: Leg) -> dict[str, Any]:
    return {
        "dex": leg.dex,
        "pool_id": leg.pool_id,
        "token_in": leg.token_in.symbol,
        "token_out": leg.token_out.symbol,
        "amount_in": format_amount(leg.amount_in, leg.token_in),
        "amount_out": format_amount(leg.amount_out, leg.token_out),
    }


def route_view(route: Route, slippage_bps: int) -> dict[str, Any]:
    return {
        "amount_out": format_amount(route.amount_out, route.token_out),
        "min_amount_out": format_amount(route.min_amount_out(slippage_bps), route.token_out),
        "price_impact_bps": route.price_impact_bps,
        "legs": [leg_view(leg) for leg in route.legs],
    }


def main_dex(route: Route) -> str:
    """The venue that fills most of the order: what `dex` says when a route is split."""
    shares: dict[str, int] = {}
    for leg in route.legs:
        if leg.token_in == route.token_in:
            shares[leg.dex] = shares.get(leg.dex, 0) + leg.amount_in
    return max(shares, key=lambda d: shares[d]) if shares else route.legs[0].dex


def price(amount_in: int, token_in: Token, amount_out: int, token_out: Token) -> str:
    """token_out received per whole token_in, to 10 significant digits."""
    with localcontext() as ctx:
        ctx.prec = 10
        p = to_decimal(amount_out, token_out) / to_decimal(amount_in, token_in)
    return format(p.normalize() if p != 0 else Decimal(0), "f")
