"""Checks requests at the edge and turns them into domain values; every error names its field."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from client.options import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from orderengine.v1 import order_service_pb2 as pb
from server.convert import ORDER_TYPE_FROM_PB, STATUS_FROM_PB
from workers.domain import (
    ACCEPTED_ORDER_TYPES,
    DEFAULT_MAX_PRICE_IMPACT_BPS,
    DEFAULT_ORDER_TYPE,
    DEFAULT_OWNER,
    DEFAULT_SLIPPAGE_BPS,
    MAX_PRICE_IMPACT_BPS,
    MAX_SLIPPAGE_BPS,
    RESTING_ORDER_TYPES,
    OrderStatus,
    OrderType,
)
from workers.market import Token, UnknownTokenError, resolve_token, to_base_units
from workers.market.tokens import is_mint_address
from workers.models import NewOrder

MAX_IDEMPOTENCY_KEY = 128
# The longest mint address is 44 base58 characters; anything much longer is no token.
MAX_TOKEN_CHARS = 64
# 19 integer digits, a point and 9 decimals, with room for leading and trailing zeros.
MAX_AMOUNT_CHARS = 64
# Prices are stored as PostgreSQL numeric; a limit finer than this is no price anyone quotes.
MAX_PRICE_DECIMALS = 18
MAX_PRICE_INTEGER_DIGITS = 20
# A resting order waits at most this long: past it, nothing (not even the delayed expiry message) should wait.
MAX_EXPIRY = timedelta(days=365)
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$|^\.[0-9]+$")


class InvalidArgument(ValueError):
    """`field` (the proto name) is wrong for the reason `problem` says; `reason` is the stable code for programs."""

    def __init__(self, field: str, problem: str, reason: str | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.reason = reason or f"INVALID_{field.upper()}"


def shown(text: str, limit: int = 40) -> str:
    """A client's value quoted in an error, clipped: errors travel in a size-limited gRPC trailer."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def parse_token(text: str, field: str) -> Token:
    if not text.strip():
        raise InvalidArgument(field, "is required (a symbol such as SOL or a mint address)")
    if len(text) > MAX_TOKEN_CHARS:
        raise InvalidArgument(field, f"unknown token {shown(text)}: a symbol or mint address is at most 44 characters")
    try:
        return resolve_token(text)
    except UnknownTokenError as exc:
        raise InvalidArgument(field, str(exc)) from None


def parse_amount(text: str, token: Token, field: str = "amount") -> int:
    text = text.strip()
    if not text:
        raise InvalidArgument(field, "is required (a decimal number of whole tokens, e.g. 1.5)")
    if len(text) > MAX_AMOUNT_CHARS:
        raise InvalidArgument(field, f"must be at most {MAX_AMOUNT_CHARS} characters, got {shown(text)}")
    if not _DECIMAL.match(text):
        if text.startswith("-"):
            raise InvalidArgument(field, f"must be greater than zero, got {text!r}")
        raise InvalidArgument(field, f"must be a plain decimal number such as 1.5, got {shown(text)}")
    try:
        units = to_base_units(Decimal(text), token)
    except (ValueError, InvalidOperation) as exc:
        raise InvalidArgument(field, str(exc)) from None
    if units <= 0:
        raise InvalidArgument(field, f"must be greater than zero, got {text!r}")
    return units


def parse_slippage(bps: int, field: str = "slippage_bps") -> int:
    if bps > MAX_SLIPPAGE_BPS:
        raise InvalidArgument(field, f"must be at most {MAX_SLIPPAGE_BPS} (50%), got {bps}")
    return bps or DEFAULT_SLIPPAGE_BPS


def parse_max_price_impact(bps: int, field: str = "max_price_impact_bps") -> int:
    if bps > MAX_PRICE_IMPACT_BPS:
        raise InvalidArgument(field, f"must be at most {MAX_PRICE_IMPACT_BPS} (100%), got {bps}")
    return bps or DEFAULT_MAX_PRICE_IMPACT_BPS


def parse_pair(token_in: str, token_out: str) -> tuple[Token, Token]:
    tin, tout = parse_token(token_in, "token_in"), parse_token(token_out, "token_out")
    if tin == tout:
        raise InvalidArgument("token_out", f"must differ from token_in (both are {tin.symbol})")
    return tin, tout


def parse_order_id(text: str, field: str = "order_id") -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidArgument(field, f"must be a UUID, got {shown(text)}") from None


def parse_limit_price(text: str, field: str = "limit_price") -> Decimal:
    text = text.strip()
    if not text:
        raise InvalidArgument(
            field, "is required for a limit order (the worst price accepted, in token_out per token_in, e.g. 150.5)"
        )
    if len(text) > MAX_AMOUNT_CHARS:
        raise InvalidArgument(field, f"must be at most {MAX_AMOUNT_CHARS} characters, got {shown(text)}")
    if not _DECIMAL.match(text):
        if text.startswith("-"):
            raise InvalidArgument(field, f"must be greater than zero, got {text!r}")
        raise InvalidArgument(field, f"must be a plain decimal number such as 150.5, got {shown(text)}")
    whole, _, fraction = text.partition(".")
    if len(fraction.rstrip("0")) > MAX_PRICE_DECIMALS:
        raise InvalidArgument(field, f"has too many decimal places: at most {MAX_PRICE_DECIMALS}, got {shown(text)}")
    if len(whole.lstrip("0")) > MAX_PRICE_INTEGER_DIGITS:
        raise InvalidArgument(field, f"is too large: at most {MAX_PRICE_INTEGER_DIGITS} integer digits")
    price = Decimal(text)
    if price <= 0:
        raise InvalidArgument(field, f"must be greater than zero, got {text!r}")
    return price.normalize()


def parse_expires_at(req: pb.ExecuteOrderRequest, field: str = "expires_at") -> datetime | None:
    if not req.HasField("expires_at"):
        return None
    try:
        when = req.expires_at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(field, f"is not a valid timestamp: {exc}") from None
    now = datetime.now(UTC)
    if when <= now:
        raise InvalidArgument(field, f"must be in the future, got {when.isoformat()} (now is {now.isoformat()})")
    if when > now + MAX_EXPIRY:
        raise InvalidArgument(field, f"must be at most {MAX_EXPIRY.days} days ahead, got {when.isoformat()}")
    return when


def parse_sniper_target(token_in: Token, text: str, field: str = "token_out") -> tuple[str, str]:
    """A sniper's token_out: a listed token, or the mint of one not listed yet. (stored name, mint)."""
    try:
        token = resolve_token(text)
    except UnknownTokenError:
        if not is_mint_address(text.strip()):
            raise InvalidArgument(
                field, f"must be a token's mint address (base58, 32 bytes) for a sniper order, got {shown(text)}"
            ) from None
        return text.strip(), text.strip()
    if token == token_in:
        raise InvalidArgument(field, f"must differ from token_in (both are {token.symbol})")
    return token.symbol, token.mint


def parse_execute(req: pb.ExecuteOrderRequest, owner_id: str = DEFAULT_OWNER) -> NewOrder:
    order_type = parse_order_type(req.order_type)
    if order_type is OrderType.SNIPER:
        tin = parse_token(req.token_in, "token_in")
        token_out, mint_out = parse_sniper_target(tin, req.token_out)
    else:
        tin, tout = parse_pair(req.token_in, req.token_out)
        token_out, mint_out = tout.symbol, tout.mint
    amount_in = parse_amount(req.amount, tin)
    limit_price: Decimal | None = None
    if order_type not in RESTING_ORDER_TYPES:
        if req.limit_price:
            raise InvalidArgument("limit_price", f"is for limit and sniper orders only, not a {order_type} order")
        if req.HasField("expires_at"):
            raise InvalidArgument("expires_at", f"is for limit and sniper orders only, not a {order_type} order")
    elif order_type is OrderType.LIMIT or req.limit_price:
        limit_price = parse_limit_price(req.limit_price)
    expires_at = parse_expires_at(req)
    slippage = parse_slippage(req.slippage_bps)
    max_impact = parse_max_price_impact(req.max_price_impact_bps)
    if len(req.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(
            "idempotency_key",
            f"must be at most {MAX_IDEMPOTENCY_KEY} characters, got {len(req.idempotency_key)}",
        )
    if "\x00" in req.idempotency_key:
        raise InvalidArgument("idempotency_key", "must not contain NUL characters")
    return NewOrder(
        owner_id=owner_id,
        order_type=order_type,
        token_in=tin.symbol,
        token_out=token_out,
        amount_in=amount_in,
        slippage_bps=slippage,
        idempotency_key=req.idempotency_key or None,
        max_price_impact_bps=max_impact,
        limit_price=limit_price,
        expires_at=expires_at,
        trigger_in=tin.mint if order_type in RESTING_ORDER_TYPES else None,
        trigger_out=mint_out if order_type in RESTING_ORDER_TYPES else None,
    )


def parse_page_size(requested: int) -> int:
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def parse_order_type(value: int, field: str = "order_type") -> OrderType:
    if value == pb.ORDER_TYPE_UNSPECIFIED:
        return DEFAULT_ORDER_TYPE
    order_type = ORDER_TYPE_FROM_PB.get(pb.OrderType.ValueType(value))
    if order_type is None or order_type not in ACCEPTED_ORDER_TYPES:
        accepted = ", ".join(sorted(ACCEPTED_ORDER_TYPES))
        raise InvalidArgument(field, f"only {accepted} orders are accepted for now")
    return order_type


def parse_status_filter(value: int) -> OrderStatus | None:
    if value == pb.ORDER_STATUS_UNSPECIFIED:
        return None
    status = STATUS_FROM_PB.get(pb.OrderStatus.ValueType(value))
    if status is None:
        raise InvalidArgument("status", f"unknown status {value}")
    return status
