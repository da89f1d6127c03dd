"""The order lifecycle, declared once.

Every allowed move is in `ALLOWED_FROM`; the store's guarded UPDATE, the actors and the tests all ask it.
A retry is not a status of its own: the next attempt starts again at `routing`, and its first event carries the
attempt number and the error that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_OWNER = "default"
DEFAULT_SLIPPAGE_BPS = 50
MAX_SLIPPAGE_BPS = 5000
# How far an order may move the price by itself (its route's price impact), unless it says otherwise: enough for
# the README's 10,000 SOL order (about 200 bps), far from a pool-draining one (thousands of bps).
DEFAULT_MAX_PRICE_IMPACT_BPS = 1000
MAX_PRICE_IMPACT_BPS = 10_000


class OrderStatus(StrEnum):
    PENDING = "pending"
    ROUTING = "routing"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({OrderStatus.CONFIRMED, OrderStatus.FAILED})
NON_FINAL_STATUSES = tuple(s for s in OrderStatus if s not in FINAL_STATUSES)

# target status -> the statuses an order may be in to move there.
ALLOWED_FROM: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(),
    # From pending on the first attempt; from any later non-final stage when a transient failure starts a retry.
    OrderStatus.ROUTING: frozenset(
        {OrderStatus.PENDING, OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED}
    ),
    OrderStatus.BUILDING: frozenset({OrderStatus.ROUTING}),
    OrderStatus.SUBMITTED: frozenset({OrderStatus.BUILDING}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SUBMITTED}),
    OrderStatus.FAILED: frozenset(NON_FINAL_STATUSES),
}


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return current in ALLOWED_FROM[target]


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    SNIPER = "sniper"


class ErrorCode(StrEnum):
    """Machine-readable reasons carried by failed events and retry events."""

    DEX_UNAVAILABLE = "DEX_UNAVAILABLE"
    TX_EXPIRED = "TX_EXPIRED"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    NO_ROUTE = "NO_ROUTE"
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    PRICE_IMPACT_TOO_HIGH = "PRICE_IMPACT_TOO_HIGH"


@dataclass(frozen=True, slots=True)
class OrderError:
    code: str
    message: str
    retryable: bool = False

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> OrderError:
        return cls(code=str(d["code"]), message=str(d["message"]), retryable=bool(d.get("retryable", False)))


class OrderFailure(Exception):
    """Raised by a stage of the pipeline; `retryable` decides between a new attempt and `failed`."""

    retryable = False

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.attempt = 0  # set by the pipeline: the attempt that failed

    def to_error(self) -> OrderError:
        return OrderError(code=self.code.value, message=self.message, retryable=self.retryable)


class TransientFailure(OrderFailure):
    """A venue timed out or errored, a transaction expired: worth another attempt."""

    retryable = True


class PermanentFailure(OrderFailure):
    """No route, slippage limit broken: another attempt cannot help."""
