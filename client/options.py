"""What both clients share: channel options, the reconnect policy of `watch`, and the request builders."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import grpc

from orderengine.v1 import order_service_pb2 as pb

DEFAULT_TARGET = "localhost:50051"
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["OrderService"].full_name
# ListOrders pages, as the contract states them: page_size 0 means the default; more than the maximum gets the
# maximum. The service applies them (server/validation.py); the bridge refuses a `limit` past them.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# The largest value of a uint32 field (slippage_bps, page_size): past it a request cannot even be encoded.
UINT32_MAX = 2**32 - 1
DEFAULT_DEADLINE_S = 10.0

# Keepalive: a ping every 30 s while a call is open (a silent watch through a NAT or a proxy stays alive and a
# dead peer is noticed), none when no call is open, and at most two in a row without data (gRPC's default), so
# even a server left at its own ping policy never counts them as abuse. The reconnect backoff is capped at 2 s
# so a restarted server is found again at once (gRPC's default cap is two minutes).
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


def channel_credentials(tls: bool, ca_file: str | None) -> grpc.ChannelCredentials | None:
    """TLS when asked for or when a CA file is given (that CA's certificates; the system's roots otherwise)."""
    if not tls and not ca_file:
        return None
    return grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes() if ca_file else None)


@dataclass(frozen=True)
class ReconnectPolicy:
    """How `watch` retries a stream that broke with UNAVAILABLE.

    The delay doubles from `initial_backoff_s` up to `max_backoff_s` (with up to 20 % jitter) and resets
    whenever an event arrives; `watch` gives up with the last error once `give_up_after_s` pass without an
    event.
    """

    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    give_up_after_s: float = 30.0

    def delays(self) -> _Backoff:
        return _Backoff(self)


class _Backoff:
    def __init__(self, policy: ReconnectPolicy) -> None:
        self._policy = policy
        self._next = policy.initial_backoff_s

    def reset(self) -> None:
        self._next = self._policy.initial_backoff_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._policy.max_backoff_s)
        return delay * (1 + random.random() * 0.2)


# The statuses the contract marks `[(terminal) = true]`: an order in one never changes again.
TERMINAL_STATUSES = frozenset(
    pb.OrderStatus.ValueType(v.number)
    for v in pb.OrderStatus.DESCRIPTOR.values
    if v.GetOptions().Extensions[pb.terminal]
)


def status_name(status: pb.OrderStatus.ValueType) -> str:
    """``ORDER_STATUS_ROUTING`` -> ``routing``."""
    return str(pb.OrderStatus.Name(status)).removeprefix("ORDER_STATUS_").lower()


def parse_status(name: str) -> pb.OrderStatus.ValueType:
    """``routing`` or ``ORDER_STATUS_ROUTING`` -> the enum value; ValueError for anything else."""
    key = name.strip().upper()
    if not key.startswith("ORDER_STATUS_"):
        key = "ORDER_STATUS_" + key
    if key == "ORDER_STATUS_UNSPECIFIED":
        raise ValueError(f"unknown status {name!r}")
    try:
        return pb.OrderStatus.Value(key)
    except ValueError:
        raise ValueError(f"unknown status {name!r}") from None


def dex_name(dex: pb.Dex.ValueType) -> str | None:
    """``DEX_RAYDIUM`` -> ``raydium``; unspecified -> None."""
    if dex == pb.DEX_UNSPECIFIED:
        return None
    return str(pb.Dex.Name(dex)).removeprefix("DEX_").lower()


def amount_text(amount: str | Decimal | int) -> str:
    """The wire form of an amount: a plain decimal string, never an exponent (Decimal("1E+3") -> "1000")."""
    if isinstance(amount, bool):
        raise TypeError("amount must be a decimal string, a Decimal or an int")
    if isinstance(amount, Decimal):
        return format(amount, "f")
    if isinstance(amount, int):
        return str(amount)
    return amount.strip()


def parse_order_type(name: str) -> pb.OrderType.ValueType:
    """``limit`` or ``ORDER_TYPE_LIMIT`` -> the enum value; ValueError for anything else."""
    key = name.strip().upper()
    if not key.startswith("ORDER_TYPE_"):
        key = "ORDER_TYPE_" + key
    if key == "ORDER_TYPE_UNSPECIFIED" or key not in set(pb.OrderType.keys()):
        names = ", ".join(n.removeprefix("ORDER_TYPE_").lower() for n in pb.OrderType.keys()[1:])
        raise ValueError(f"unknown order type {name!r}; one of {names}")
    return pb.OrderType.Value(key)


def execute_request(
    token_in: str,
    token_out: str,
    amount: str | Decimal | int,
    slippage_bps: int,
    idempotency_key: str,
    max_price_impact_bps: int = 0,
    *,
    order_type: str | pb.OrderType.ValueType | None = None,
    limit_price: str | Decimal | int = "",
    expires_at: datetime | None = None,
) -> pb.ExecuteOrderRequest:
    if isinstance(order_type, str):
        order_type = parse_order_type(order_type)
    request = pb.ExecuteOrderRequest(
        token_in=token_in,
        token_out=token_out,
        amount=amount_text(amount),
        slippage_bps=slippage_bps,
        idempotency_key=idempotency_key,
        # None leaves it UNSPECIFIED: the service's default, a market order.
        order_type=order_type or pb.ORDER_TYPE_UNSPECIFIED,
        limit_price=amount_text(limit_price) if limit_price != "" else "",
        max_price_impact_bps=max_price_impact_bps,
    )
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at)
    return request


def list_request(
    status: str | pb.OrderStatus.ValueType | None, page_size: int, page_token: str
) -> pb.ListOrdersRequest:
    if isinstance(status, str):
        status = parse_status(status)
    return pb.ListOrdersRequest(
        page_size=page_size, page_token=page_token, status=status or pb.ORDER_STATUS_UNSPECIFIED
    )


def quote_request(token_in: str, token_out: str, amount: str | Decimal | int, slippage_bps: int) -> pb.GetQuoteRequest:
    return pb.GetQuoteRequest(
        token_in=token_in, token_out=token_out, amount=amount_text(amount), slippage_bps=slippage_bps
    )
