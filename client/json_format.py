"""Protobuf messages as the camelCase JSON that browser users know from the seed API.

One shape for every JSON consumer: the bridge's HTTP and WebSocket answers and `orderctl --json`. Statuses
and venues are lower case ("routing", "raydium"), amounts stay decimal strings (no float rounding), missing
values are null, times are ISO-8601 in UTC, and `txHash` is the transaction signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from client.options import dex_name, status_name
from orderengine.v1 import order_service_pb2 as pb

JSON = dict[str, Any]


def _text(value: str) -> str | None:
    return value or None


def timestamp_text(ts: Timestamp) -> str | None:
    """``2026-11-24T11:04:57.123Z``; None for an unset timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    moment = ts.ToDatetime(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_json(route: pb.Route) -> JSON:
    return {
        "amountOut": _text(route.amount_out),
        "minAmountOut": _text(route.min_amount_out),
        "priceImpactBps": route.price_impact_bps,
        "legs": [
            {
                "dex": dex_name(leg.dex),
                "tokenIn": leg.token_in,
                "tokenOut": leg.token_out,
                "amountIn": _text(leg.amount_in),
                "amountOut": _text(leg.amount_out),
                "poolId": _text(leg.pool_id),
            }
            for leg in route.legs
        ],
    }


def _error_fields(has_error: bool, error: pb.OrderError) -> JSON:
    if not has_error:
        return {"error": None, "errorCode": None, "retryable": None}
    message = error.message or error.code
    return {"error": message, "errorCode": _text(error.code), "retryable": error.retryable}


def event_json(event: pb.OrderEvent) -> JSON:
    """One WebSocket message / one `orderctl watch --json` line."""
    return {
        "orderId": event.order_id,
        "seq": event.seq,
        "status": status_name(event.status),
        "attempt": event.attempt,
        "dex": dex_name(event.dex),
        "route": route_json(event.route) if event.HasField("route") else None,
        "instructions": list(event.instructions),
        "txHash": _text(event.tx_signature),
        "executedPrice": _text(event.executed_price),
        "amountOut": _text(event.amount_out),
        **_error_fields(event.HasField("error"), event.error),
        "skippedVenues": _venue_notes(event.skipped_venues),
        "timestamp": timestamp_text(event.time),
    }


def _venue_notes(notes: Iterable[pb.VenueNote]) -> list[JSON]:
    return [{"dex": dex_name(n.dex), "reason": n.reason} for n in notes]


def order_json(order: pb.Order) -> JSON:
    return {
        "orderId": order.order_id,
        "tokenIn": order.token_in,
        "tokenOut": order.token_out,
        "amount": order.amount,
        "slippageBps": order.slippage_bps,
        "orderType": str(pb.OrderType.Name(order.order_type)).removeprefix("ORDER_TYPE_").lower()
        if order.order_type != pb.ORDER_TYPE_UNSPECIFIED
        else "market",
        "status": status_name(order.status),
        "attempt": order.attempt,
        "dex": dex_name(order.dex),
        "route": route_json(order.route) if order.HasField("route") else None,
        "txHash": _text(order.tx_signature),
        "executedPrice": _text(order.executed_price),
        "amountOut": _text(order.amount_out),
        **_error_fields(order.HasField("error"), order.error),
        "createdAt": timestamp_text(order.created_at),
        "updatedAt": timestamp_text(order.updated_at),
        "lastSeq": order.last_seq,
        "idempotencyKey": _text(order.idempotency_key),
        "limitPrice": _text(order.limit_price),
        "expiresAt": timestamp_text(order.expires_at) if order.HasField("expires_at") else None,
    }


def order_list_json(response: pb.ListOrdersResponse) -> JSON:
    return {
        "orders": [order_json(o) for o in response.orders],
        "nextPageToken": _text(response.next_page_token),
    }


def quote_json(response: pb.GetQuoteResponse) -> JSON:
    return {
        "quotes": [
            {
                "dex": dex_name(q.dex),
                "amountOut": _text(q.amount_out),
                "priceImpactBps": q.price_impact_bps,
                "feeBps": q.fee_bps,
            }
            for q in response.quotes
        ],
        "route": route_json(response.route) if response.HasField("route") else None,
        "unquotedVenues": _venue_notes(response.unquoted_venues),
    }
