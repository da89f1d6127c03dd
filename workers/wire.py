"""Order events as the protobuf messages WatchOrder streams (`orderengine.v1.OrderEvent`).

Built once, where the event is committed: the event path publishes these bytes on Redis, and a server forwards the
message it parsed to every stream of the order, so no process decodes JSON and re-encodes protobuf per event, or
builds the message once per stream (issue 14). `server/convert.py` builds the other messages from these parts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.v1 import order_service_pb2 as pb
from workers.domain import OrderError, OrderStatus
from workers.market import DEXES
from workers.models import OrderEvent

# Domain statuses and their protobuf twins share member names (ORDER_STATUS_<NAME>), so the maps are derived: a status
# the domain gains without a value in the .proto fails here, at import, in every test.
STATUS_TO_PB = {s: pb.OrderStatus.Value(f"ORDER_STATUS_{s.name}") for s in OrderStatus}
STATUS_FROM_PB = {v: s for s, v in STATUS_TO_PB.items()}
DEX_TO_PB: dict[str, pb.Dex.ValueType] = {dex: pb.Dex.Value(f"DEX_{dex.upper()}") for dex in DEXES}


def timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def dex(name: str | None) -> pb.Dex.ValueType:
    return DEX_TO_PB.get(name or "", pb.DEX_UNSPECIFIED)


def error(err: OrderError | None) -> pb.OrderError | None:
    return pb.OrderError(code=err.code, message=err.message, retryable=err.retryable) if err else None


def route(view: dict[str, Any] | None) -> pb.Route | None:
    if not view:
        return None
    return pb.Route(
        amount_out=view["amount_out"],
        min_amount_out=view["min_amount_out"],
        price_impact_bps=view["price_impact_bps"],
        legs=[
            pb.RouteLeg(
                dex=dex(leg["dex"]),
                token_in=leg["token_in"],
                token_out=leg["token_out"],
                amount_in=leg["amount_in"],
                amount_out=leg["amount_out"],
                pool_id=leg["pool_id"],
            )
            for leg in view["legs"]
        ],
    )


def venue_note(name: str, reason: str) -> pb.VenueNote:
    return pb.VenueNote(dex=dex(name), reason=reason)


def event(ev: OrderEvent) -> pb.OrderEvent:
    d = ev.details
    return pb.OrderEvent(
        order_id=ev.order_id,
        seq=ev.seq,
        status=STATUS_TO_PB[ev.status],
        time=timestamp(ev.time),
        attempt=ev.attempt,
        dex=dex(d.dex),
        route=route(d.route),
        instructions=d.instructions,
        tx_signature=d.tx_signature or "",
        executed_price=d.executed_price or "",
        amount_out=d.amount_out or "",
        error=error(d.error),
        skipped_venues=[venue_note(v.dex, v.reason) for v in d.skipped_venues],
    )
