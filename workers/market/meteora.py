"""Meteora DLMM pools: liquidity in discrete price bins, a base fee plus a volatility-driven variable fee.

Model (after Meteora's DLMM program, simplified where the chain's bookkeeping does not change prices):

* Bin `i` has the constant price `(1 + bin_step / 10_000) ** i` in Y base units per X base unit, kept as a
  Q64.64 integer. Decimals are therefore already inside the bin id: SOL/USDC at 170 USDC is bin id about
  -1,875 at a 10 bps step (0.17 micro-USDC per lamport).
* Bins left of the active bin hold only Y, bins right of it only X, the active bin may hold both. Within a bin
  the swap is constant-sum at the bin's price. Selling X consumes Y from the active bin and then walks left
  (down in price); selling Y consumes X and walks right. Empty bins are passed over, a bin with liquidity
  never is.
* Fee rate (parts per 1e9) = base `base_factor * bin_step * 10` + variable `ceil(variable_fee_control *
  (volatility_accumulator * bin_step) ** 2 / 1e11)`, capped at 10%, charged on the input of each bin at that
  bin's rate. The accumulator is `volatility_reference + 10_000 * |bins crossed|`, capped.
* Decay without a clock: every swap starts as Meteora does once a filter period has passed, with
  `volatility_reference = volatility_accumulator * reduction_factor / 10_000` and the index reference at the
  active bin; so a burst of swaps accumulates volatility and it halves (by default) with each later swap.
  `tick(elapsed_seconds)` decays it for idle time as well: nothing under `filter_period`, one reduction per
  filter period after that, and back to zero after `decay_period`. The state after a sequence of swaps and
  ticks depends on that sequence only, so settlements replay exactly.
* Fees are not added to bin liquidity (Meteora keeps them for LPs to claim): they go to `fees_x` / `fees_y`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from decimal import ROUND_FLOOR, Decimal, localcontext
from functools import lru_cache
from typing import Any, ClassVar

from workers.market.pool import BPS, Dex, InsufficientLiquidityError, Pool, SwapResult, impact_bps, ratio_bps
from workers.market.tokens import Token, resolve_token

SCALE_OFFSET = 64
ONE_Q64 = 1 << SCALE_OFFSET
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000  # 10%
VARIABLE_FEE_DIVISOR = 100_000_000_000


# Meteora's bound on bin ids; beyond it prices leave the Q64.64 range.
MAX_BIN_ID = 443_636


@lru_cache(maxsize=1 << 16)
def bin_price_q64(bin_step: int, bin_id: int) -> int:
    """floor((1 + bin_step/1e4) ** bin_id * 2**64), from an 80-digit Decimal power.

    Exact integer powers would be exact but cost seconds for far bins (numbers of a million bits); 80 digits
    are far beyond what a price needs, and libmpdec gives the same digits on every machine.
    """
    if abs(bin_id) > MAX_BIN_ID:
        raise ValueError(f"bin id {bin_id} out of range")
    with localcontext() as ctx:
        ctx.prec = 80
        price = int((Decimal(BPS + bin_step) / BPS) ** bin_id * ONE_Q64)
    if price <= 0:
        raise ValueError(f"bin {bin_id} at step {bin_step} has a price below the Q64.64 resolution")
    return price


def bin_id_for_price(bin_step: int, price_q64: int) -> int:
    """The highest bin whose price is at or below `price_q64`."""
    if price_q64 <= 0:
        raise ValueError("price must be positive")
    with localcontext() as ctx:
        ctx.prec = 50
        guess = (Decimal(price_q64) / ONE_Q64).ln() / (1 + Decimal(bin_step) / BPS).ln()
        bin_id = int(guess.to_integral_value(rounding=ROUND_FLOOR))
    # ln at 50 digits can still land one bin off at an exact boundary: settle it with exact integers.
    while bin_price_q64(bin_step, bin_id) > price_q64:
        bin_id -= 1
    while bin_price_q64(bin_step, bin_id + 1) <= price_q64:
        bin_id += 1
    return bin_id


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class _Step:
    """Draining one non-empty bin completely, in the direction of a swap."""

    bin_id: int
    price: int
    rate: int
    volatility_accumulator: int
    reserve: int  # of the output token: all of it is bought
    net: int  # input that buys it, fee excluded


@dataclass(frozen=True, slots=True)
class _Ladder:
    """The bins a swap in one direction would drain, from the active bin outward, as far as computed so far.

    Depends on the pool state only (the fee of each bin depends on its distance from the active bin), so it is
    computed once per state and direction and then answers every quote by bisection: the router's split search
    asks for dozens of quotes on the same state.
    """

    steps: tuple[_Step, ...]
    cum_gross: tuple[int, ...]  # input, fees included, to drain steps[0..k]
    cum_out: tuple[int, ...]
    next_bin: int | None  # first bin not examined yet; None once the pool's last bin is done


@dataclass(frozen=True, slots=True)
class DlmmPool(Pool):
    dex: ClassVar[Dex] = "meteora"

    id: str
    token_x: Token
    token_y: Token
    bin_step: int  # bps between adjacent bins
    active_id: int
    lower_bin_id: int  # bins_x[i] / bins_y[i] belong to bin lower_bin_id + i
    bins_x: tuple[int, ...]
    bins_y: tuple[int, ...]
    base_factor: int = 10_000
    variable_fee_control: int = 40_000
    max_volatility_accumulator: int = 350_000
    reduction_factor: int = 5_000  # bps of the accumulator kept per decay step
    filter_period: int = 30  # seconds
    decay_period: int = 600  # seconds
    volatility_accumulator: int = 0
    fees_x: int = 0
    fees_y: int = 0
    # Per-state memo of _Ladder by direction (True = selling X); not state, so not compared, copied or serialised.
    # Each ladder is built aside and stored in one assignment: threads sharing a pool may duplicate work, no more.
    _ladders: dict[bool, _Ladder] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.token_x == self.token_y:
            raise ValueError("a pool needs two different tokens")
        if not 0 < self.bin_step <= 500:
            raise ValueError(f"pool {self.id}: bin step {self.bin_step} out of range")
        if len(self.bins_x) != len(self.bins_y) or not self.bins_x:
            raise ValueError(f"pool {self.id}: bins_x and bins_y must be non-empty and of equal length")
        if not self.lower_bin_id <= self.active_id <= self.upper_bin_id:
            raise ValueError(f"pool {self.id}: active bin {self.active_id} outside its bins")
        if min(self.bins_x) < 0 or min(self.bins_y) < 0:
            raise ValueError(f"pool {self.id}: negative bin reserve")

    @property
    def upper_bin_id(self) -> int:
        return self.lower_bin_id + len(self.bins_x) - 1

    def bin(self, bin_id: int) -> tuple[int, int]:
        """(x, y) reserves of a bin; (0, 0) outside the pool's range."""
        i = bin_id - self.lower_bin_id
        if 0 <= i < len(self.bins_x):
            return self.bins_x[i], self.bins_y[i]
        return 0, 0

    def fee_rate(self, volatility_accumulator: int) -> int:
        """Total fee rate in parts per FEE_PRECISION for a given accumulator."""
        base = self.base_factor * self.bin_step * 10
        v = volatility_accumulator * self.bin_step
        variable = _ceil_div(self.variable_fee_control * v * v, VARIABLE_FEE_DIVISOR)
        return min(base + variable, MAX_FEE_RATE)

    def tick(self, elapsed_seconds: int) -> DlmmPool:
        """Idle-time decay of the volatility accumulator (see the module doc). Pure."""
        if elapsed_seconds < self.filter_period or self.volatility_accumulator == 0:
            return self
        if elapsed_seconds >= self.decay_period:
            return replace(self, volatility_accumulator=0)
        steps = elapsed_seconds // self.filter_period
        va = self.volatility_accumulator * self.reduction_factor**steps // BPS**steps
        return replace(self, volatility_accumulator=va)

    def _ladder(self, sells_x: bool, amount_in: int) -> _Ladder:
        """The ladder for this direction, extended until it covers amount_in or the pool's last bin."""
        ladder = self._ladders.get(sells_x)
        if ladder is None:
            ladder = _Ladder((), (), (), self.active_id)
        if ladder.next_bin is None or (ladder.cum_gross and ladder.cum_gross[-1] >= amount_in):
            return ladder
        steps, cum_gross, cum_out = list(ladder.steps), list(ladder.cum_gross), list(ladder.cum_out)
        gross = cum_gross[-1] if cum_gross else 0
        out = cum_out[-1] if cum_out else 0
        # Grow at least geometrically so that a search over rising amounts extends the ladder rarely.
        min_steps = 2 * len(steps)
        reference = self.volatility_accumulator * self.reduction_factor // BPS
        reserves = self.bins_y if sells_x else self.bins_x
        step, last, lower = (
            (-1, self.lower_bin_id, self.lower_bin_id) if sells_x else (1, self.upper_bin_id, self.lower_bin_id)
        )
        bin_id: int | None = ladder.next_bin
        while bin_id is not None and (gross < amount_in or len(steps) < min_steps):
            reserve = reserves[bin_id - lower]
            if reserve > 0:
                va = min(reference + abs(self.active_id - bin_id) * BPS, self.max_volatility_accumulator)
                rate = self.fee_rate(va)
                price = bin_price_q64(self.bin_step, bin_id)
                # Input (fee excluded) buying the whole reserve, rounded up: the bin never gives too much.
                net = _ceil_div(reserve << SCALE_OFFSET, price) if sells_x else _ceil_div(reserve * price, ONE_Q64)
                gross += net + _ceil_div(net * rate, FEE_PRECISION - rate)
                out += reserve
                steps.append(_Step(bin_id, price, rate, va, reserve, net))
                cum_gross.append(gross)
                cum_out.append(out)
            bin_id = None if bin_id == last else bin_id + step
        ladder = _Ladder(tuple(steps), tuple(cum_gross), tuple(cum_out), bin_id)
        self._ladders[sells_x] = ladder
        return ladder

    @staticmethod
    def _partial(step: _Step, sells_x: bool, amount: int) -> tuple[int, int]:
        """(net input, output) of `amount` (fee included) that does not drain the step's bin."""
        net = amount - _ceil_div(amount * step.rate, FEE_PRECISION)
        out = (net * step.price) >> SCALE_OFFSET if sells_x else (net << SCALE_OFFSET) // step.price
        return net, min(out, step.reserve)

    def quote_out(self, token_in: Token, amount_in: int) -> int | None:
        sells_x = self._sells_x(token_in, amount_in)
        ladder = self._ladder(sells_x, amount_in)
        k = bisect_right(ladder.cum_gross, amount_in)  # bins drained completely
        drained_gross = ladder.cum_gross[k - 1] if k else 0
        drained_out = ladder.cum_out[k - 1] if k else 0
        if k == len(ladder.steps):
            return drained_out if drained_gross == amount_in else None
        return drained_out + self._partial(ladder.steps[k], sells_x, amount_in - drained_gross)[1]

    def swap(self, token_in: Token, amount_in: int) -> SwapResult:
        sells_x = self._sells_x(token_in, amount_in)
        ladder = self._ladder(sells_x, amount_in)
        k = bisect_right(ladder.cum_gross, amount_in)
        drained_gross = ladder.cum_gross[k - 1] if k else 0
        if k == len(ladder.steps) and drained_gross != amount_in:
            raise InsufficientLiquidityError(
                f"pool {self.id} has too little {self.other(token_in).symbol} to fill "
                f"{amount_in} base units of {token_in.symbol}"
            )
        bins_in = list(self.bins_x if sells_x else self.bins_y)
        bins_out = list(self.bins_y if sells_x else self.bins_x)
        lower = self.lower_bin_id
        amount_out = net_total = 0
        for step in ladder.steps[:k]:
            bins_in[step.bin_id - lower] += step.net
            bins_out[step.bin_id - lower] -= step.reserve
            amount_out += step.reserve
            net_total += step.net
        last = ladder.steps[k - 1] if k else None
        if drained_gross < amount_in:
            # The swap ends inside this bin, which becomes (or stays) the active one.
            last = ladder.steps[k]
            net, out = self._partial(last, sells_x, amount_in - drained_gross)
            bins_in[last.bin_id - lower] += net
            bins_out[last.bin_id - lower] -= out
            amount_out += out
            net_total += net
        if amount_out <= 0 or last is None:
            raise InsufficientLiquidityError(
                f"{amount_in} base units of {token_in.symbol} buy nothing from pool {self.id}"
            )
        fee = amount_in - net_total
        after = replace(
            self,
            active_id=last.bin_id,
            bins_x=tuple(bins_in if sells_x else bins_out),
            bins_y=tuple(bins_out if sells_x else bins_in),
            volatility_accumulator=last.volatility_accumulator,
            fees_x=self.fees_x + (fee if sells_x else 0),
            fees_y=self.fees_y + (0 if sells_x else fee),
        )
        price = bin_price_q64(self.bin_step, self.active_id)
        spot = (price, ONE_Q64) if sells_x else (ONE_Q64, price)
        return SwapResult(
            amount_in=amount_in,
            amount_out=amount_out,
            fee_paid=fee,
            fee_bps=ratio_bps(fee, amount_in),
            price_impact_bps=impact_bps(amount_out, net_total, *spot),
            pool_after=after,
        )

    def spot_price(self, base: Token) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = 40
            per_base_unit = Decimal(bin_price_q64(self.bin_step, self.active_id)) / ONE_Q64
            price = per_base_unit.scaleb(self.token_x.decimals - self.token_y.decimals)
            if base == self.token_x:
                result = price
            elif base == self.token_y:
                result = 1 / price
            else:
                raise ValueError(f"pool {self.id} does not hold {base.symbol}")
        return +result  # back to the caller's precision

    def reserves(self) -> tuple[int, int]:
        return sum(self.bins_x), sum(self.bins_y)

    def to_json(self) -> dict[str, Any]:
        return {
            "dex": self.dex,
            "id": self.id,
            "token_x": self.token_x.symbol,
            "token_y": self.token_y.symbol,
            "bin_step": self.bin_step,
            "active_id": self.active_id,
            "lower_bin_id": self.lower_bin_id,
            "bins_x": list(self.bins_x),
            "bins_y": list(self.bins_y),
            "base_factor": self.base_factor,
            "variable_fee_control": self.variable_fee_control,
            "max_volatility_accumulator": self.max_volatility_accumulator,
            "reduction_factor": self.reduction_factor,
            "filter_period": self.filter_period,
            "decay_period": self.decay_period,
            "volatility_accumulator": self.volatility_accumulator,
            "fees_x": self.fees_x,
            "fees_y": self.fees_y,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DlmmPool:
        return cls(
            id=str(d["id"]),
            token_x=resolve_token(d["token_x"]),
            token_y=resolve_token(d["token_y"]),
            bin_step=int(d["bin_step"]),
            active_id=int(d["active_id"]),
            lower_bin_id=int(d["lower_bin_id"]),
            bins_x=tuple(int(v) for v in d["bins_x"]),
            bins_y=tuple(int(v) for v in d["bins_y"]),
            base_factor=int(d["base_factor"]),
            variable_fee_control=int(d["variable_fee_control"]),
            max_volatility_accumulator=int(d["max_volatility_accumulator"]),
            reduction_factor=int(d["reduction_factor"]),
            filter_period=int(d["filter_period"]),
            decay_period=int(d["decay_period"]),
            volatility_accumulator=int(d["volatility_accumulator"]),
            fees_x=int(d["fees_x"]),
            fees_y=int(d["fees_y"]),
        )
