"""Domain records to protobuf messages; no decisions here. An order event's message is `workers.wire.event`."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from decimal import Decimal

from orderengine.v1 import order_service_pb2 as pb
from workers.domain import OrderType
from workers.market import VenueQuote, format_amount, resolve_token, route_from_json
from workers.models import Order
from workers.views import route_view
from workers.wire import DEX_TO_PB, STATUS_FROM_PB, STATUS_TO_PB, dex, error, event, route, timestamp, venue_note

# Re-exported: an event's message and its parts are built in `workers.wire`, where events are published.
__all__ = [
    "DEX_TO_PB",
    "ORDER_TYPE_FROM_PB",
    "ORDER_TYPE_TO_PB",
    "STATUS_FROM_PB",
    "STATUS_TO_PB",
    "dex",
    "error",
    "event",
    "format_price",
    "order",
    "page_token",
    "parse_page_token",
    "route",
    "timestamp",
    "venue_note",
    "venue_quote",
]

# Order types and their protobuf twins share member names (ORDER_TYPE_<NAME>), so the maps are derived: a type the
# domain gains without a value in the .proto fails here, at import, in every test. Statuses: `workers.wire`.
ORDER_TYPE_TO_PB = {t: pb.OrderType.Value(f"ORDER_TYPE_{t.name}") for t in OrderType}
ORDER_TYPE_FROM_PB = {v: t for t, v in ORDER_TYPE_TO_PB.items()}


def order(o: Order) -> pb.Order:
    token_in = resolve_token(o.token_in)
    view = route_view(route_from_json(o.route), o.slippage_bps) if o.route else None
    # A sniper's token_out may be a mint not listed yet; once it has an amount_out, its token is listed.
    amount_out = format_amount(o.amount_out, resolve_token(o.token_out)) if o.amount_out is not None else ""
    return pb.Order(
        order_id=o.id,
        token_in=o.token_in,
        token_out=o.token_out,
        amount=format_amount(o.amount_in, token_in),
        slippage_bps=o.slippage_bps,
        order_type=ORDER_TYPE_TO_PB[o.order_type],
        status=STATUS_TO_PB[o.status],
        attempt=o.attempt,
        dex=dex(o.dex),
        route=route(view),
        tx_signature=o.tx_signature or "",
        executed_price=o.executed_price or "",
        amount_out=amount_out,
        error=error(o.error),
        created_at=timestamp(o.created_at),
        updated_at=timestamp(o.updated_at),
        last_seq=o.last_seq,
        idempotency_key=o.idempotency_key or "",
        limit_price=format_price(o.limit_price) if o.limit_price is not None else "",
        expires_at=timestamp(o.expires_at) if o.expires_at is not None else None,
    )


def format_price(price: Decimal) -> str:
    """Plain decimal text, no exponent, no trailing zeros: "150.25", "0.0000001"."""
    text = f"{price:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def venue_quote(q: VenueQuote) -> pb.VenueQuote:
    return pb.VenueQuote(
        dex=dex(q.dex),
        amount_out=format_amount(q.amount_out, q.route.token_out),
        price_impact_bps=q.price_impact_bps,
        fee_bps=q.fee_bps,
    )


def page_token(o: Order) -> str:
    return base64.urlsafe_b64encode(f"{o.created_at.isoformat()}|{o.id}".encode()).decode()


def parse_page_token(token: str) -> tuple[datetime, str]:
    """Raises ValueError for a token this server did not make."""
    created, order_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
    return datetime.fromisoformat(created), str(uuid.UUID(order_id))
