"""The order lifecycle, declared once: every allowed move is a row of `TRANSITIONS`, keyed by (status, event).

Everything else is derived from the table: the final statuses (those with no way out), the store's guarded UPDATE
(`moves(event)`: from which statuses an event applies and where each goes), the protobuf conversions (by name, in
`server/convert.py`), the lifecycle table in the README and the tests (tests/unit/test_lifecycle_rules.py checks
both). A status or an event that is not in the table cannot happen: the store's UPDATE matches no row.

Events, not target statuses, are the key, so outcomes that end in a final status for different reasons stay
different events (`FAIL`, `CANCEL`, `EXPIRE`). Resting orders (limit, sniper) added rows such as
`(PENDING, REST) -> OPEN`, `(OPEN, TRIGGER) -> ROUTING`, `(OPEN, CANCEL) -> CANCELLED`, `(OPEN, EXPIRE) -> EXPIRED`,
and nothing else changed shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import MappingProxyType

DEFAULT_OWNER = "default"
DEFAULT_SLIPPAGE_BPS = 50
# The largest slippage an order may allow (50 %): past it, "at any price" is what the client would be asking for.
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
    OPEN = "open"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


class LifecycleEvent(StrEnum):
    """What happens to an order. Each event moves it along the rows of `TRANSITIONS` that name it."""

    START = "start"  # a worker takes the order up
    ROUTE = "route"  # the venues answered and a route was chosen
    SUBMIT = "submit"  # the built transaction went to the chain
    CONFIRM = "confirm"  # it landed and the swap settled
    RETRY = "retry"  # a transient failure: the next attempt begins
    FAIL = "fail"  # a permanent failure, or the last attempt's
    REST = "rest"  # a limit or sniper order starts waiting for its price or its token
    TRIGGER = "trigger"  # the pools made a resting order's price reachable: it executes now
    REOPEN = "reopen"  # the price slipped back below the limit before the swap landed
    CANCEL = "cancel"  # its owner cancelled it before it started executing
    EXPIRE = "expire"  # it reached expires_at while still waiting


# Every order is created in this status, with event seq 1; it is not the target of any event.
INITIAL_STATUS = OrderStatus.PENDING

_S, _E = OrderStatus, LifecycleEvent
TRANSITIONS: Mapping[tuple[OrderStatus, LifecycleEvent], OrderStatus] = MappingProxyType(
    {
        (_S.PENDING, _E.START): _S.ROUTING,
        (_S.ROUTING, _E.ROUTE): _S.BUILDING,
        (_S.BUILDING, _E.SUBMIT): _S.SUBMITTED,
        (_S.SUBMITTED, _E.CONFIRM): _S.CONFIRMED,
        # A retry is not a status of its own: the next attempt starts over at routing with a fresh quote wherever
        # the last one failed (a venue that did not answer; a transaction that expired before it landed). Its event
        # carries the new attempt number and the error that caused it.
        (_S.ROUTING, _E.RETRY): _S.ROUTING,
        (_S.BUILDING, _E.RETRY): _S.ROUTING,
        (_S.SUBMITTED, _E.RETRY): _S.ROUTING,
        # `failed` from any non-final status, pending included: a permanent error needs no stage to be reached.
        (_S.PENDING, _E.FAIL): _S.FAILED,
        (_S.ROUTING, _E.FAIL): _S.FAILED,
        (_S.BUILDING, _E.FAIL): _S.FAILED,
        (_S.SUBMITTED, _E.FAIL): _S.FAILED,
        (_S.OPEN, _E.FAIL): _S.FAILED,
        # Resting orders. A limit or sniper order waits in `open` instead of starting; the trigger engine
        # (workers/triggers.py) fires it into the same `routing` a market order starts at, with this one guarded
        # move, so a trigger racing a cancel or an expiry ends in exactly one of the three stories.
        (_S.PENDING, _E.REST): _S.OPEN,
        (_S.OPEN, _E.TRIGGER): _S.ROUTING,
        # A limit never fills below its limit: an attempt that finds the price gone (at routing, or when the swap
        # would land) goes back to waiting instead of failing; the event's error says why.
        (_S.ROUTING, _E.REOPEN): _S.OPEN,
        (_S.BUILDING, _E.REOPEN): _S.OPEN,
        (_S.SUBMITTED, _E.REOPEN): _S.OPEN,
        # Only before execution starts: once a transaction may be in flight, a cancel could not undo it.
        (_S.PENDING, _E.CANCEL): _S.CANCELLED,
        (_S.OPEN, _E.CANCEL): _S.CANCELLED,
        # A pending order past its expiry (the worker never rested it in time) expires as a resting one would.
        (_S.PENDING, _E.EXPIRE): _S.EXPIRED,
        (_S.OPEN, _E.EXPIRE): _S.EXPIRED,
    }
)
del _S, _E

# A final status is one the table has no way out of.
FINAL_STATUSES = frozenset(s for s in OrderStatus if not any(source is s for source, _ in TRANSITIONS))
NON_FINAL_STATUSES = tuple(s for s in OrderStatus if s not in FINAL_STATUSES)


@cache
def moves(event: LifecycleEvent) -> Mapping[OrderStatus, OrderStatus]:
    """Where `event` takes an order, by the status it is in; a status not listed cannot take the event."""
    return MappingProxyType({source: target for (source, e), target in TRANSITIONS.items() if e is event})


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    SNIPER = "sniper"


# What a request that names no order type gets, and the types the engine executes today.
DEFAULT_ORDER_TYPE = OrderType.MARKET
ACCEPTED_ORDER_TYPES = frozenset(OrderType)
# Order types that rest in `open` until their trigger; a market order never does.
RESTING_ORDER_TYPES = frozenset({OrderType.LIMIT, OrderType.SNIPER})


class ErrorCode(StrEnum):
    """Machine-readable reasons carried by failed events and retry events."""

    DEX_UNAVAILABLE = "DEX_UNAVAILABLE"
    TX_EXPIRED = "TX_EXPIRED"
    SLIPPAGE_EXCEEDED = "SLIPPAGE_EXCEEDED"
    NO_ROUTE = "NO_ROUTE"
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"
    PRICE_IMPACT_TOO_HIGH = "PRICE_IMPACT_TOO_HIGH"
    LIMIT_NOT_REACHED = "LIMIT_NOT_REACHED"


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


class LimitNotReached(Exception):
    """The pools no longer fill a resting order at its limit. Not an `OrderFailure`: the order goes back to
    `open` (the `reopen` event carries this as its error) and waits for the price again; it does not fail."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_error(self) -> OrderError:
        return OrderError(code=ErrorCode.LIMIT_NOT_REACHED.value, message=self.message, retryable=True)
