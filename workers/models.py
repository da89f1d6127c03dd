"""The records the engine keeps: an order as accepted, as stored, and each of its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from workers.domain import DEFAULT_MAX_PRICE_IMPACT_BPS, OrderError, OrderStatus, OrderType


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A validated ExecuteOrder request: tokens by symbol, the amount in base units of token_in."""

    owner_id: str
    order_type: OrderType
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int
    idempotency_key: str | None = None
    max_price_impact_bps: int = DEFAULT_MAX_PRICE_IMPACT_BPS
    # Limit and sniper orders only: the worst price accepted (token_out per token_in) and when it stops waiting.
    limit_price: Decimal | None = None
    expires_at: datetime | None = None
    # Resting orders only: the direction they wait on, by mint.
    trigger_in: str | None = None
    trigger_out: str | None = None

    def fingerprint(self) -> str:
        """What an idempotency key must match to return the same order."""
        text = f"{self.order_type}|{self.token_in}|{self.token_out}|{self.amount_in}|{self.slippage_bps}"
        # Orders stored before the limit existed have the default, and their fingerprints stay as they were.
        if self.max_price_impact_bps != DEFAULT_MAX_PRICE_IMPACT_BPS:
            text += f"|impact<={self.max_price_impact_bps}"
        # Likewise market orders, which have neither a limit price nor an expiry.
        if self.limit_price is not None or self.expires_at is not None:
            expires = self.expires_at.isoformat() if self.expires_at else ""
            text += f"|limit={self.limit_price or ''}|expires={expires}"
        return text


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    owner_id: str
    order_type: OrderType
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int
    status: OrderStatus
    attempt: int
    last_seq: int
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None
    dex: str | None = None
    route: dict[str, Any] | None = None
    tx_signature: str | None = None
    executed_price: str | None = None
    amount_out: int | None = None
    error: OrderError | None = None
    max_price_impact_bps: int = DEFAULT_MAX_PRICE_IMPACT_BPS
    limit_price: Decimal | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SkippedVenue:
    """A venue an attempt routed without, and why."""

    dex: str
    reason: str


@dataclass(frozen=True, slots=True)
class EventDetails:
    """What an event says beyond its status; stored as the event's JSON payload."""

    dex: str | None = None
    route: dict[str, Any] | None = None
    instructions: tuple[str, ...] = ()
    tx_signature: str | None = None
    executed_price: str | None = None
    amount_out: str | None = None
    error: OrderError | None = None
    skipped_venues: tuple[SkippedVenue, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.dex is not None:
            d["dex"] = self.dex
        if self.route is not None:
            d["route"] = self.route
        if self.instructions:
            d["instructions"] = list(self.instructions)
        if self.tx_signature is not None:
            d["tx_signature"] = self.tx_signature
        if self.executed_price is not None:
            d["executed_price"] = self.executed_price
        if self.amount_out is not None:
            d["amount_out"] = self.amount_out
        if self.error is not None:
            d["error"] = self.error.to_json()
        if self.skipped_venues:
            d["skipped_venues"] = [{"dex": v.dex, "reason": v.reason} for v in self.skipped_venues]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EventDetails:
        return cls(
            dex=d.get("dex"),
            route=d.get("route"),
            instructions=tuple(d.get("instructions", ())),
            tx_signature=d.get("tx_signature"),
            executed_price=d.get("executed_price"),
            amount_out=d.get("amount_out"),
            error=OrderError.from_json(d["error"]) if d.get("error") else None,
            skipped_venues=tuple(SkippedVenue(v["dex"], v["reason"]) for v in d.get("skipped_venues", ())),
        )


@dataclass(frozen=True, slots=True)
class OrderEvent:
    order_id: str
    seq: int
    status: OrderStatus
    attempt: int
    time: datetime
    details: EventDetails = field(default_factory=EventDetails)
    # Known to the process that wrote the event (not sent to watchers): what metrics and traces label it with.
    order_type: OrderType | None = None
    placed_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "seq": self.seq,
            "status": self.status.value,
            "attempt": self.attempt,
            "time": self.time.isoformat(),
            **self.details.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OrderEvent:
        return cls(
            order_id=d["order_id"],
            seq=int(d["seq"]),
            status=OrderStatus(d["status"]),
            attempt=int(d["attempt"]),
            time=datetime.fromisoformat(d["time"]),
            details=EventDetails.from_json(d),
        )
