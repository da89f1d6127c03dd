"""Routing: the best way to sell `amount_in` of one token for another across both venues' pools.

Representation: a route is a set of *paths* that run in parallel, each one pool (direct) or two pools in
sequence (one hop through SOL or USDC). `Route.legs` lists every swap in execution order, grouped by path;
`Leg.path` is the path's index (0, 1, ...). The first leg of a path sells that path's share of the input
(`leg.amount_in`), each later leg of the same path sells what the previous leg bought. `execute` replays
exactly this structure.

Splits: the router takes the best single path, then tries splitting the input between it and the most
promising pool-disjoint other path, finding the optimal share by golden-section search (outputs are concave in
the input, so the sum over a split is unimodal). Only two-path splits are considered; a split is used only
when it beats the best single path by more than rounding (> 1 base unit and > 0.01 bps).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from workers.market.pool import BPS, DEXES, Dex, InsufficientLiquidityError, Pool, ratio_bps
from workers.market.tokens import SOL, USDC, Token, format_amount, resolve_token

HOP_TOKENS: tuple[Token, ...] = (SOL, USDC)

# A split must beat the best single path by more than this fraction (0.01 bps) and more than one base unit.
MIN_SPLIT_GAIN_PPM = 1
# Golden-section search stops once the split is known to within total >> SPLIT_PRECISION_BITS base units;
# around the optimum the output is flat, so the loss from stopping there is far below a base unit per million.
SPLIT_PRECISION_BITS = 16
_INV_PHI_PPM = 618_034


class NoRouteError(ValueError):
    """No pool or one-hop path connects the two tokens."""


@dataclass(frozen=True, slots=True)
class Leg:
    pool_id: str
    dex: Dex
    token_in: Token
    token_out: Token
    amount_in: int
    amount_out: int
    path: int = 0  # index of the parallel path this leg belongs to
    fee_paid: int = 0  # in token_in base units
    price_impact_bps: int = 0

    @property
    def fee_bps(self) -> int:
        return ratio_bps(self.fee_paid, self.amount_in)

    def to_json(self) -> dict[str, Any]:
        return {
            "pool_id": self.pool_id,
            "dex": self.dex,
            "token_in": self.token_in.symbol,
            "token_out": self.token_out.symbol,
            "amount_in": self.amount_in,
            "amount_out": self.amount_out,
            "path": self.path,
            "fee_paid": self.fee_paid,
            "price_impact_bps": self.price_impact_bps,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Leg:
        dex = d["dex"]
        if dex not in DEXES:
            raise ValueError(f"unknown dex {dex!r} in route leg")
        return cls(
            pool_id=str(d["pool_id"]),
            dex=dex,
            token_in=resolve_token(d["token_in"]),
            token_out=resolve_token(d["token_out"]),
            amount_in=int(d["amount_in"]),
            amount_out=int(d["amount_out"]),
            path=int(d["path"]),
            fee_paid=int(d["fee_paid"]),
            price_impact_bps=int(d["price_impact_bps"]),
        )


@dataclass(frozen=True, slots=True)
class Route:
    token_in: Token
    token_out: Token
    amount_in: int
    amount_out: int
    price_impact_bps: int  # input-weighted over paths; a path compounds its legs' impacts
    fee_bps: int  # likewise for fees
    legs: tuple[Leg, ...]

    def min_amount_out(self, slippage_bps: int) -> int:
        if not 0 <= slippage_bps <= BPS:
            raise ValueError(f"slippage_bps must be between 0 and {BPS}, got {slippage_bps}")
        return self.amount_out * (BPS - slippage_bps) // BPS

    @property
    def dexes(self) -> tuple[Dex, ...]:
        return tuple(dict.fromkeys(leg.dex for leg in self.legs))

    @property
    def pool_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(leg.pool_id for leg in self.legs))

    @property
    def paths(self) -> tuple[tuple[Leg, ...], ...]:
        return tuple(tuple(legs) for legs in _group_paths(self.legs).values())

    @property
    def is_split(self) -> bool:
        return len(_group_paths(self.legs)) > 1

    def shares_bps(self) -> tuple[int, ...]:
        """Each path's share of the input, in bps, in path order."""
        return tuple(ratio_bps(legs[0].amount_in, self.amount_in) for legs in self.paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "token_in": self.token_in.symbol,
            "token_out": self.token_out.symbol,
            "amount_in": self.amount_in,
            "amount_out": self.amount_out,
            "price_impact_bps": self.price_impact_bps,
            "fee_bps": self.fee_bps,
            "legs": [leg.to_json() for leg in self.legs],
        }


def route_from_json(d: Mapping[str, Any]) -> Route:
    return Route(
        token_in=resolve_token(d["token_in"]),
        token_out=resolve_token(d["token_out"]),
        amount_in=int(d["amount_in"]),
        amount_out=int(d["amount_out"]),
        price_impact_bps=int(d["price_impact_bps"]),
        fee_bps=int(d["fee_bps"]),
        legs=tuple(Leg.from_json(leg) for leg in d["legs"]),
    )


@dataclass(frozen=True, slots=True)
class VenueQuote:
    dex: Dex
    amount_out: int
    price_impact_bps: int
    fee_bps: int
    route: Route


@dataclass(frozen=True, slots=True)
class Execution:
    amount_out: int
    legs: tuple[Leg, ...]
    pools_after: dict[str, Pool]  # only the pools the route touched, in their state after it

    @property
    def price_impact_bps(self) -> int:
        """The route's price impact as executed now, weighted as `Route.price_impact_bps` is."""
        return _impact_and_fee_bps(self.legs)[0]


# -- paths ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Path:
    hops: tuple[tuple[Pool, Token], ...]  # (pool, token sold into it), in order

    def quote(self, amount: int) -> int | None:
        for pool, token_in in self.hops:
            if amount <= 0:
                return 0
            out = pool.quote_out(token_in, amount)
            if out is None:
                return None
            amount = out
        return amount

    @property
    def pool_ids(self) -> frozenset[str]:
        return frozenset(pool.id for pool, _ in self.hops)

    @property
    def dexes(self) -> frozenset[Dex]:
        return frozenset(pool.dex for pool, _ in self.hops)


def _paths(pools: Sequence[Pool], token_in: Token, token_out: Token) -> list[_Path]:
    if token_in == token_out:
        raise NoRouteError(f"cannot swap {token_in.symbol} for itself")
    paths = [_Path(((p, token_in),)) for p in pools if p.has(token_in) and p.has(token_out)]
    for mid in HOP_TOKENS:
        if mid in (token_in, token_out):
            continue
        firsts = [p for p in pools if p.has(token_in) and p.has(mid)]
        seconds = [p for p in pools if p.has(mid) and p.has(token_out)]
        paths.extend(_Path(((a, token_in), (b, mid))) for a in firsts for b in seconds)
    if not paths:
        raise NoRouteError(f"no pool or one-hop path (via SOL or USDC) from {token_in.symbol} to {token_out.symbol}")
    return paths


def _best_single(paths: Iterable[_Path], amount_in: int) -> tuple[_Path, int] | None:
    best: tuple[_Path, int] | None = None
    for path in paths:
        out = path.quote(amount_in)
        if out is not None and out > 0 and (best is None or out > best[1]):
            best = (path, out)
    return best


def _maximize_unimodal(g: Callable[[int], int], lo: int, hi: int) -> tuple[int, int]:
    """Golden-section search for the integer t in [lo, hi] maximizing a unimodal g; returns (t, g(t))."""
    tol = max(4, (hi - lo) >> SPLIT_PRECISION_BITS)
    a, b = lo, hi
    c = b - (b - a) * _INV_PHI_PPM // 1_000_000
    d = a + (b - a) * _INV_PHI_PPM // 1_000_000
    gc, gd = g(c), g(d)
    best = max((gc, -c), (gd, -d))
    while b - a > tol:
        if gc >= gd:
            b, d, gd = d, c, gc
            c = b - (b - a) * _INV_PHI_PPM // 1_000_000
            gc = g(c)
            best = max(best, (gc, -c))
        else:
            a, c, gc = c, d, gd
            d = a + (b - a) * _INV_PHI_PPM // 1_000_000
            gd = g(d)
            best = max(best, (gd, -d))
    for t in range(a, b + 1) if b - a <= 8 else (a, b):
        best = max(best, (g(t), -t))
    return -best[1], best[0]


def _best_split(best: _Path, best_out: int, others: Sequence[_Path], amount_in: int) -> tuple[_Path, int] | None:
    """The other path and the share of amount_in it should get, if splitting pays; None otherwise."""
    probe = max(1, amount_in >> 10)
    if probe >= amount_in:
        return None
    rest = best.quote(amount_in - probe)
    if rest is None:
        return None
    # Concavity: if a small share does not pay, no share pays, so most candidates cost one quote.
    promising: list[tuple[int, int, _Path]] = []
    for i, other in enumerate(others):
        if other.pool_ids & best.pool_ids:
            continue
        out = other.quote(probe)
        if out is not None and rest + out > best_out:
            promising.append((rest + out, -i, other))
    promising.sort(reverse=True)
    choice: tuple[_Path, int] | None = None
    choice_out = best_out
    for _, _, other in promising[:2]:

        def total(t: int, other: _Path = other) -> int:
            a, b = best.quote(amount_in - t), other.quote(t)
            return -1 if a is None or b is None else a + b

        t, out = _maximize_unimodal(total, 0, amount_in)
        if 0 < t < amount_in and out > choice_out:
            choice, choice_out = (other, t), out
    gain = choice_out - best_out
    if choice is None or gain <= 1 or gain * 1_000_000 <= best_out * MIN_SPLIT_GAIN_PPM:
        return None
    return choice


# -- running a route -----------------------------------------------------------------------------------------

_Plan = Sequence[tuple[Sequence[tuple[str, Token]], int]]  # per path: (pool id, token sold) hops, path input


def _run(plan: _Plan, pools_by_id: Mapping[str, Pool]) -> tuple[int, tuple[Leg, ...], dict[str, Pool]]:
    """Swaps each path in order on a private view of the pools: a pool used twice sees its earlier change."""
    touched: dict[str, Pool] = {}
    legs: list[Leg] = []
    total_out = 0
    for index, (hops, amount_in) in enumerate(plan):
        amount = amount_in
        for pool_id, token_in in hops:
            pool = touched[pool_id] if pool_id in touched else pools_by_id.get(pool_id)
            if pool is None:
                raise NoRouteError(f"pool {pool_id} is not in the market")
            result = pool.swap(token_in, amount)
            touched[pool_id] = result.pool_after
            legs.append(
                Leg(
                    pool_id=pool_id,
                    dex=pool.dex,
                    token_in=token_in,
                    token_out=pool.other(token_in),
                    amount_in=amount,
                    amount_out=result.amount_out,
                    path=index,
                    fee_paid=result.fee_paid,
                    price_impact_bps=result.price_impact_bps,
                )
            )
            amount = result.amount_out
        total_out += amount
    return total_out, tuple(legs), touched


def _group_paths(legs: Iterable[Leg]) -> dict[int, list[Leg]]:
    groups: dict[int, list[Leg]] = {}
    for leg in legs:
        groups.setdefault(leg.path, []).append(leg)
    return groups


def _impact_and_fee_bps(legs: Iterable[Leg]) -> tuple[int, int]:
    """Input-weighted over the paths; along a path, the legs' impacts (and fees) compound."""
    groups = _group_paths(legs).values()
    amount_in = sum(path[0].amount_in for path in groups)
    fee = impact = Fraction(0)
    for path in groups:
        keep_fee = keep_price = Fraction(1)
        for leg in path:
            keep_fee *= 1 - Fraction(leg.fee_paid, leg.amount_in)
            keep_price *= 1 - Fraction(leg.price_impact_bps, BPS)
        share = Fraction(path[0].amount_in, amount_in)
        fee += share * (1 - keep_fee)
        impact += share * (1 - keep_price)
    return round(impact * BPS), round(fee * BPS)


def _route(token_in: Token, token_out: Token, legs: tuple[Leg, ...], amount_out: int) -> Route:
    impact_bps, fee_bps = _impact_and_fee_bps(legs)
    return Route(
        token_in=token_in,
        token_out=token_out,
        amount_in=sum(path[0].amount_in for path in _group_paths(legs).values()),
        amount_out=amount_out,
        price_impact_bps=impact_bps,
        fee_bps=fee_bps,
        legs=legs,
    )


def _plan_for(paths: Sequence[tuple[_Path, int]]) -> _Plan:
    return [(tuple((pool.id, token) for pool, token in path.hops), amount) for path, amount in paths]


def _route_for(pools: Sequence[Pool], token_in: Token, token_out: Token, paths: Sequence[tuple[_Path, int]]) -> Route:
    amount_out, legs, _ = _run(_plan_for(paths), {p.id: p for p in pools})
    return _route(token_in, token_out, legs, amount_out)


# -- public --------------------------------------------------------------------------------------------------


def _check_amount(amount_in: int) -> None:
    if amount_in <= 0:
        raise ValueError(f"amount_in must be positive, got {amount_in}")


@dataclass(frozen=True, slots=True)
class VenueShortfall:
    """A venue with no quote of its own for the whole amount, and why."""

    dex: Dex
    reason: str


def venue_quotes(pools: Sequence[Pool], token_in: Token, token_out: Token, amount_in: int) -> list[VenueQuote]:
    """Each venue's best single path on its own pools, for venues that can fill the order (raydium first)."""
    return venue_quotes_and_shortfalls(pools, token_in, token_out, amount_in)[0]


def venue_quotes_and_shortfalls(
    pools: Sequence[Pool], token_in: Token, token_out: Token, amount_in: int
) -> tuple[list[VenueQuote], list[VenueShortfall]]:
    """`venue_quotes`, and for every other venue why it has none: no path of its own, or not deep enough."""
    _check_amount(amount_in)
    paths = _paths(pools, token_in, token_out)
    quotes: list[VenueQuote] = []
    shortfalls: list[VenueShortfall] = []
    pair = f"{token_in.symbol} for {token_out.symbol}"
    for dex in DEXES:
        own = [p for p in paths if p.dexes == {dex}]
        best = _best_single(own, amount_in)
        if best is None:
            reason = (
                f"{dex} cannot fill {format_amount(amount_in, token_in)} {token_in.symbol} alone: its pools run "
                "out of liquidity first (it may still fill part of a split route)"
                if own
                else f"{dex} has no pool or one-hop path (via SOL or USDC) to swap {pair}"
            )
            shortfalls.append(VenueShortfall(dex, reason))
            continue
        route = _route_for(pools, token_in, token_out, [(best[0], amount_in)])
        quotes.append(VenueQuote(dex, route.amount_out, route.price_impact_bps, route.fee_bps, route))
    return quotes, shortfalls


def best_route(pools: Sequence[Pool], token_in: Token, token_out: Token, amount_in: int) -> Route:
    """The route with the highest amount_out over all pools, split in two when that pays beyond rounding."""
    _check_amount(amount_in)
    paths = _paths(pools, token_in, token_out)
    best = _best_single(paths, amount_in)
    if best is None:
        raise InsufficientLiquidityError(
            f"no path can fill {amount_in} base units of {token_in.symbol} for {token_out.symbol}"
        )
    path, out = best
    split = _best_split(path, out, [p for p in paths if p is not path], amount_in)
    if split is None:
        return _route_for(pools, token_in, token_out, [(path, amount_in)])
    other, share = split
    return _route_for(pools, token_in, token_out, [(path, amount_in - share), (other, share)])


def execute(route: Route, pools_by_id: Mapping[str, Pool]) -> Execution:
    """Re-prices the route's exact structure (pools, input split) on the pools as they are now.

    Raises InsufficientLiquidityError if a pool can no longer fill its leg, NoRouteError if a pool is gone.
    """
    plan: list[tuple[list[tuple[str, Token]], int]] = []
    for legs in _group_paths(route.legs).values():
        for before, after in itertools.pairwise(legs):
            if before.token_out != after.token_in:
                raise ValueError(f"route path {before.path} is broken between {before.pool_id} and {after.pool_id}")
        plan.append(([(leg.pool_id, leg.token_in) for leg in legs], legs[0].amount_in))
    amount_out, legs_now, pools_after = _run(plan, pools_by_id)
    return Execution(amount_out=amount_out, legs=legs_now, pools_after=pools_after)
