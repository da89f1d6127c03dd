"""What a limit means in base units, and the best price the pools offer per direction. Pure.

A limit price is whole `token_out` per whole `token_in`. An order of `amount_in` reaches its limit when a route
returns at least `limit_min_out` base units of `token_out`. The trigger engine narrows the orders to check with
`direction_bounds`: no route can return more per unit than the best marginal (spot) price along any path, since
fees, price impact and rounding only take away; so an order whose limit is above its direction's bound cannot be
reachable, and the index range scan leaves it unread.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from decimal import Decimal
from fractions import Fraction

from workers.market import Pool, Token
from workers.market.routing import HOP_TOKENS

# Headroom on the bound against Decimal rounding in the spot prices (28 significant digits): a bound a hair too
# high only adds a candidate that the exact check then declines.
_BOUND_HEADROOM = Decimal("1.000000001")


def limit_min_out(amount_in: int, token_in: Token, token_out: Token, limit_price: Decimal) -> int:
    """The fewest base units of token_out that honour `limit_price` for `amount_in` base units (rounded up)."""
    exact = Fraction(amount_in) * Fraction(limit_price) * 10**token_out.decimals / 10**token_in.decimals
    units: int = -(-exact.numerator // exact.denominator)
    return units


def _best_spot(pools: Iterable[Pool], sell: Token, buy: Token) -> tuple[Decimal, frozenset[str]] | None:
    best: Decimal | None = None
    ids: set[str] = set()
    for pool in pools:
        if pool.has(sell) and pool.has(buy):
            ids.add(pool.id)
            price = pool.spot_price(sell)
            best = price if best is None or price > best else best
    return (best, frozenset(ids)) if best is not None else None


def direction_bounds(
    pools: Collection[Pool],
    moved: Collection[str] | None = None,
    directions: Collection[tuple[str, str]] | None = None,
) -> Iterator[tuple[Token, Token, Decimal]]:
    """(token_in, token_out, the best price any direct or one-hop path offers) for every direction that a pool
    in `moved` takes part in (every direction when `moved` is None), among `directions` ((mint in, mint out)
    pairs: the directions some order waits on) when given, so the work follows the resting orders."""
    tokens = {t.mint: t for pool in pools for t in (pool.token_x, pool.token_y)}
    if directions is None:
        pairs = [(tin, tout) for tin in tokens.values() for tout in tokens.values() if tin != tout]
    else:
        pairs = [(tokens[i], tokens[o]) for i, o in directions if i != o and i in tokens and o in tokens]
    for tin, tout in pairs:
        best: Decimal | None = None
        touched = moved is None
        candidates = [_best_spot(pools, tin, tout)]
        for mid in HOP_TOKENS:
            if mid in (tin, tout):
                continue
            first, second = _best_spot(pools, tin, mid), _best_spot(pools, mid, tout)
            if first and second:
                candidates.append((first[0] * second[0], first[1] | second[1]))
        for found in candidates:
            if found is None:
                continue
            price, ids = found
            touched = touched or bool(moved and not ids.isdisjoint(moved))
            best = price if best is None or price > best else best
        if touched and best is not None:
            yield tin, tout, best * _BOUND_HEADROOM
