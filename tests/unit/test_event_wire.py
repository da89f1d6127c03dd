"""The bytes the event path publishes (`workers.publisher`): the protobuf message WatchOrder streams."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from server import convert
from workers.domain import OrderError, OrderStatus
from workers.models import EventDetails, OrderEvent, SkippedVenue
from workers.publisher import decode, encode

EVENT = OrderEvent(
    order_id="00000000-0000-0000-0000-000000000001",
    seq=3,
    status=OrderStatus.FAILED,
    attempt=2,
    time=datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    details=EventDetails(
        dex="meteora",
        instructions=("wrap_sol", "swap"),
        error=OrderError("NO_ROUTE", "none", retryable=False),
        skipped_venues=(SkippedVenue("raydium", "did not answer"),),
    ),
)


def test_a_published_event_is_the_message_a_stream_sends() -> None:
    heard = decode(encode(EVENT))
    assert (heard.order_id, heard.seq, heard.status, heard.is_final) == (EVENT.order_id, 3, OrderStatus.FAILED, True)
    assert heard.message == convert.event(EVENT)


def test_json_as_earlier_versions_published_it_still_decodes() -> None:
    legacy = json.dumps(EVENT.to_json()).encode()
    assert decode(legacy).message == convert.event(EVENT)


@pytest.mark.parametrize("data", [b"end", b"{not json", b"\xff\xff\xff"])
def test_what_is_not_an_event_raises(data: bytes) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any error: the hub drops the message, whichever it is
        decode(data)
