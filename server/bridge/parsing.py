"""The bridge's edge: browser JSON and query strings in, typed values out, and gRPC errors back as HTTP.

Only shape is checked here (types, required keys, number formats); what an amount or a token *means* is the
service's to judge, and its INVALID_ARGUMENT comes back as a 400 naming the same camelCase field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import grpc

from client.errors import OrderServiceError
from client.options import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, UINT32_MAX, parse_status
from orderengine.v1 import order_service_pb2 as pb

MAX_BODY_BYTES = 16 * 1024
# Event numbers are PostgreSQL bigints.
MAX_SEQ = 2**63 - 1
# A JSON number for an amount is written out in plain digits for the service; past this power of ten that text
# would be enormous (1e999999999 is a gigabyte of zeros), and no token's supply comes near it.
MAX_AMOUNT_EXPONENT = 40
_SNAKE = re.compile(r"_([a-z0-9])")
# `str.isdigit` also admits "²" and Arabic-Indic digits; integers here are ASCII digits, at most 19 of them (a bigint).
_ASCII_INT = re.compile(r"[0-9]{1,19}")
_SURROGATE = re.compile("[\ud800-\udfff]")

# gRPC status -> HTTP status, as the gRPC docs' HTTP mapping has it.
HTTP_STATUS_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class InputError(Exception):
    """Bad input from the browser: `message` for people, `field` (camelCase) for code, `status` for HTTP."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def body(self) -> dict[str, Any]:
        code = "PAYLOAD_TOO_LARGE" if self.status == 413 else "INVALID_ARGUMENT"
        return {"error": self.message, "code": code, "field": self.field}


@dataclass(frozen=True)
class OrderInput:
    """A validated `POST /api/orders/execute` body (or the first message of the execute socket)."""

    token_in: str
    token_out: str
    amount: str
    slippage_bps: int = 0
    idempotency_key: str = ""
    max_price_impact_bps: int = 0
    order_type: str | None = None
    limit_price: str = ""
    expires_at: datetime | None = None

    def execute_kwargs(self) -> dict[str, Any]:
        """The client's `execute` arguments for the order's type."""
        return {"order_type": self.order_type, "limit_price": self.limit_price, "expires_at": self.expires_at}


ORDER_TYPES = ("market", "limit", "sniper")


def camel(name: str) -> str:
    """``token_in`` -> ``tokenIn``; the bridge names fields as the browser sent them."""
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def service_error_body(error: OrderServiceError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a failed RPC: `reason` is the service's stable reason (ErrorInfo)."""
    status = HTTP_STATUS_OF.get(error.code, 502)
    message = error.details or error.code_name
    if error.is_connection_failure:
        message = "order service unavailable"
    field = camel(error.field) if error.field else None
    body: dict[str, Any] = {"error": message, "code": error.code_name, "field": field}
    if error.reason:
        body["reason"] = error.reason
    if error.retry_delay_s is not None:
        body["retryAfterSeconds"] = round(error.retry_delay_s, 3)
    return status, body


def service_error_headers(error: OrderServiceError) -> dict[str, str]:
    """`Retry-After` (whole seconds, rounded up) for a rate limit, `WWW-Authenticate` for a missing or bad key."""
    headers: dict[str, str] = {}
    if error.retry_delay_s is not None:
        headers["retry-after"] = str(max(math.ceil(error.retry_delay_s), 1))
    if error.code == grpc.StatusCode.UNAUTHENTICATED:
        headers["www-authenticate"] = 'Bearer realm="orderengine"'
    return headers


def ascii_int(text: str) -> int | None:
    """The integer `text` spells in ASCII digits (19 at most), else None."""
    return int(text) if _ASCII_INT.fullmatch(text) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _refuse_lone_surrogates(document: Any) -> None:
    """JSON may spell a lone UTF-16 surrogate ("\\ud800"), which no UTF-8 text (nor protobuf string) can hold."""
    pending: list[tuple[Any, str | None]] = [(document, None)]
    while pending:  # iterative: json nests deeper than Python recursion is comfortable with
        value, field = pending.pop()
        if isinstance(value, str) and _SURROGATE.search(value):
            raise InputError(f"{field or 'the body'} is not valid Unicode text: it holds a lone surrogate", field)
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise InputError("a key of the body is not valid Unicode text: it holds a lone surrogate")
                pending.append((item, field or key))
        elif isinstance(value, list):
            pending.extend((item, field) for item in value)


def load_json(body: bytes | str) -> Any:
    """Parse JSON keeping numbers exact (Decimal, integers too: no digit limit), refusing NaN, Infinity and text
    that is not Unicode."""
    try:
        document = json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"malformed JSON: {e}") from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply") from None
    _refuse_lone_surrogates(document)
    return document


def _required_text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise InputError(f"{key} is required", key)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{key} must be a non-empty string", key)
    return value.strip()


def amount_text(value: Any, field: str = "amount") -> str:
    """A JSON number or a decimal string -> the plain decimal string the service takes."""
    if value is None:
        raise InputError(f"{field} is required", field)
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise InputError(f"{field} must be a number or a decimal string", field)
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise InputError(f"{field} must be a decimal number, got {value!r}", field) from None
    if not number.is_finite():
        raise InputError(f"{field} must be a finite number", field)
    if isinstance(value, str):
        return value.strip()
    if number and not -MAX_AMOUNT_EXPONENT <= number.adjusted() <= MAX_AMOUNT_EXPONENT:
        raise InputError(f"{field} is out of range, got {value:.3e}", field)
    return format(number, "f")


def _bps(value: Any, field: str) -> int:
    if value is None:
        return 0
    bps: int | None = None
    if isinstance(value, str):
        bps = ascii_int(value.strip())
    elif (  # compared before any int(): int(Decimal("1e999999999")) would take forever
        isinstance(value, int | Decimal)
        and not isinstance(value, bool)
        and Decimal(value).is_finite()
        and 0 <= value <= UINT32_MAX
        and value == int(value)
    ):
        bps = int(value)
    if bps is None or not 0 <= bps <= UINT32_MAX:
        # The shape only (a uint32 on the wire): the largest slippage allowed is the service's to judge.
        raise InputError(f"{field} must be a non-negative integer", field)
    return bps


def _order_type(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in ORDER_TYPES:
        raise InputError(f"orderType must be one of {', '.join(ORDER_TYPES)}", "orderType")
    return value.strip().lower()


def rfc3339(value: Any, field: str) -> datetime | None:
    """An RFC 3339 timestamp with its offset ("2026-01-01T12:00:00Z"); whether it is in the future is the
    service's to judge."""
    if value is None:
        return None
    problem = f"{field} must be an RFC 3339 timestamp with a time zone, such as 2026-01-01T12:00:00Z"
    if not isinstance(value, str) or len(value) > 64:
        raise InputError(problem, field)
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InputError(problem, field) from None
    if moment.tzinfo is None:
        raise InputError(problem, field)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InputError(problem, field) from None


def parse_order(obj: Any) -> OrderInput:
    """`{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps"?: 50, "idempotencyKey"?: "k",
    "maxPriceImpactBps"?: 1000, "orderType"?: "market" | "limit" | "sniper", "limitPrice"?: "150.5",
    "expiresAt"?: "2026-01-01T12:00:00Z"}`."""
    if not isinstance(obj, dict):
        raise InputError("the body must be a JSON object")
    key = obj.get("idempotencyKey")
    if key is not None and not isinstance(key, str):
        raise InputError("idempotencyKey must be a string", "idempotencyKey")
    limit_price = obj.get("limitPrice")
    return OrderInput(
        order_type=_order_type(obj.get("orderType")),
        limit_price=amount_text(limit_price, "limitPrice") if limit_price is not None else "",
        expires_at=rfc3339(obj.get("expiresAt"), "expiresAt"),
        token_in=_required_text(obj, "tokenIn"),
        token_out=_required_text(obj, "tokenOut"),
        amount=amount_text(obj.get("amount")),
        slippage_bps=_bps(obj.get("slippageBps"), "slippageBps"),
        idempotency_key=key or "",
        max_price_impact_bps=_bps(obj.get("maxPriceImpactBps"), "maxPriceImpactBps"),
    )


def parse_from_seq(text: str | None) -> int:
    if text is None or text == "":
        return 0
    seq = ascii_int(text)
    if seq is None or seq > MAX_SEQ:
        raise InputError(f"fromSeq must be an integer from 0 to {MAX_SEQ}, got {text[:30]!r}", "fromSeq")
    return seq


@dataclass(frozen=True)
class ListQuery:
    status: pb.OrderStatus.ValueType | None
    limit: int
    page_token: str


def parse_list_query(params: dict[str, str]) -> ListQuery:
    """`?status=confirmed&limit=20&pageToken=...` of `GET /api/orders`."""
    status: pb.OrderStatus.ValueType | None = None
    if params.get("status"):
        try:
            status = parse_status(params["status"])
        except ValueError as e:
            raise InputError(str(e), "status") from None
    limit = ascii_int(params.get("limit") or str(DEFAULT_PAGE_SIZE))
    if limit is None or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InputError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}", "limit")
    return ListQuery(status=status, limit=limit, page_token=params.get("pageToken", ""))


@dataclass(frozen=True)
class QuoteQuery:
    token_in: str
    token_out: str
    amount: str
    slippage_bps: int


def parse_quote_query(params: dict[str, str]) -> QuoteQuery:
    """`?tokenIn=SOL&tokenOut=USDC&amount=1000&slippageBps=50` of `GET /api/quote`."""
    return QuoteQuery(
        token_in=_required_text(dict(params), "tokenIn"),
        token_out=_required_text(dict(params), "tokenOut"),
        amount=amount_text(params.get("amount")),
        slippage_bps=_bps(params.get("slippageBps"), "slippageBps"),
    )
