"""Pure conversions of the bridge and the clients: protobuf -> camelCase JSON, browser JSON -> order input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from client.errors import OrderServiceError
from client.json_format import event_json, order_json, quote_json, timestamp_text
from client.options import amount_text, parse_status, status_name
from orderengine.v1 import order_service_pb2 as pb
from server.bridge.parsing import (
    InputError,
    OrderInput,
    camel,
    load_json,
    parse_from_seq,
    parse_list_query,
    parse_order,
    parse_quote_query,
    service_error_body,
)

SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"


def ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def route() -> pb.Route:
    return pb.Route(
        amount_out="213.5",
        min_amount_out="212.4",
        price_impact_bps=12,
        legs=[pb.RouteLeg(dex=pb.DEX_METEORA, token_in="SOL", token_out="USDC", amount_in="1.5", amount_out="213.5")],
    )


def test_event_json_has_the_seed_keys_in_camel_case() -> None:
    event = pb.OrderEvent(
        order_id="o1",
        seq=5,
        status=pb.ORDER_STATUS_CONFIRMED,
        time=ts(1_764_000_000, 123_000_000),
        attempt=1,
        dex=pb.DEX_METEORA,
        route=route(),
        tx_signature=SIG,
        executed_price="142.33",
        amount_out="213.5",
    )
    assert event_json(event) == {
        "orderId": "o1",
        "seq": 5,
        "status": "confirmed",
        "attempt": 1,
        "dex": "meteora",
        "route": {
            "amountOut": "213.5",
            "minAmountOut": "212.4",
            "priceImpactBps": 12,
            "legs": [
                {
                    "dex": "meteora",
                    "tokenIn": "SOL",
                    "tokenOut": "USDC",
                    "amountIn": "1.5",
                    "amountOut": "213.5",
                    "poolId": None,
                }
            ],
        },
        "instructions": [],
        "txHash": SIG,
        "executedPrice": "142.33",
        "amountOut": "213.5",
        "error": None,
        "errorCode": None,
        "retryable": None,
        "skippedVenues": [],
        "timestamp": "2025-11-24T16:00:00.123Z",
    }


def test_event_json_missing_values_are_null_and_errors_are_strings() -> None:
    event = pb.OrderEvent(
        order_id="o1",
        seq=6,
        status=pb.ORDER_STATUS_FAILED,
        attempt=3,
        error=pb.OrderError(code="DEX_UNAVAILABLE", message="DEX routing failed"),
    )
    as_json = event_json(event)
    assert as_json["dex"] is None and as_json["route"] is None and as_json["txHash"] is None
    assert as_json["timestamp"] is None
    assert as_json["status"] == "failed"
    assert (as_json["error"], as_json["errorCode"]) == ("DEX routing failed", "DEX_UNAVAILABLE")
    assert as_json["retryable"] is False
    code_only = event_json(pb.OrderEvent(status=pb.ORDER_STATUS_FAILED, error=pb.OrderError(code="NO_ROUTE")))
    assert code_only["error"] == "NO_ROUTE"


@pytest.mark.parametrize("status", list(pb.OrderStatus.values())[1:])
def test_status_names_round_trip(status: pb.OrderStatus.ValueType) -> None:
    name = status_name(status)
    assert name == name.lower() and parse_status(name) == status and parse_status(name.upper()) == status


@pytest.mark.parametrize("name", ["", "unspecified", "ORDER_STATUS_UNSPECIFIED", "done"])
def test_unknown_status_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        parse_status(name)


def test_order_and_quote_json() -> None:
    order = pb.Order(
        order_id="o2",
        token_in="SOL",
        token_out="USDC",
        amount="1.5",
        slippage_bps=50,
        status=pb.ORDER_STATUS_SUBMITTED,
        attempt=2,
        dex=pb.DEX_RAYDIUM,
        created_at=ts(1_764_000_000),
        last_seq=4,
    )
    as_json = order_json(order)
    assert as_json["orderType"] == "market" and as_json["status"] == "submitted" and as_json["dex"] == "raydium"
    assert as_json["createdAt"] == "2025-11-24T16:00:00.000Z" and as_json["updatedAt"] is None
    assert as_json["lastSeq"] == 4 and as_json["idempotencyKey"] is None and as_json["route"] is None
    quote = pb.GetQuoteResponse(
        quotes=[pb.VenueQuote(dex=pb.DEX_RAYDIUM, amount_out="1", price_impact_bps=3, fee_bps=25)], route=route()
    )
    assert quote_json(quote)["quotes"] == [{"dex": "raydium", "amountOut": "1", "priceImpactBps": 3, "feeBps": 25}]
    assert quote_json(pb.GetQuoteResponse())["route"] is None


def test_timestamp_text() -> None:
    assert timestamp_text(Timestamp()) is None
    assert timestamp_text(ts(0, 1_000_000)) == "1970-01-01T00:00:00.001Z"


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "1"), (Decimal("1.50"), "1.50"), (Decimal("1E+3"), "1000"), (" 2.5 ", "2.5"), (Decimal("1E-7"), "0.0000001")],
)
def test_amounts_go_on_the_wire_as_plain_decimals(value: Any, text: str) -> None:
    assert amount_text(value) == text


# -- browser input -----------------------------------------------------------------------------------------------


def test_parse_order_accepts_numbers_and_strings() -> None:
    seed = parse_order(load_json(b'{"tokenIn":"SOL","tokenOut":"USDC","amount":1}'))
    assert seed == OrderInput("SOL", "USDC", "1")
    exact = parse_order(load_json(b'{"tokenIn":"SOL","tokenOut":"USDC","amount":0.1,"slippageBps":75}'))
    assert exact.amount == "0.1" and exact.slippage_bps == 75  # no float rounding: 0.1 stays 0.1
    big = parse_order(load_json(b'{"tokenIn":"SOL","tokenOut":"USDC","amount":1e3,"idempotencyKey":"k"}'))
    assert big.amount == "1000" and big.idempotency_key == "k"
    text = parse_order({"tokenIn": " SOL ", "tokenOut": "USDC", "amount": "1.5", "slippageBps": Decimal("50")})
    assert text == OrderInput("SOL", "USDC", "1.5", 50)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tokenOut": "USDC", "amount": 1}, "tokenIn"),
        ({"tokenIn": "", "tokenOut": "USDC", "amount": 1}, "tokenIn"),
        ({"tokenIn": "SOL", "tokenOut": 5, "amount": 1}, "tokenOut"),
        ({"tokenIn": "SOL", "tokenOut": "USDC"}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": None}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": False}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": [1]}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "one"}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "Infinity"}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps": 1.5}, "slippageBps"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps": 2**32}, "slippageBps"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps": True}, "slippageBps"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "idempotencyKey": 7}, "idempotencyKey"),
    ],
)
def test_parse_order_names_the_bad_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as bad:
        parse_order(body)
    assert bad.value.field == field and bad.value.status == 400
    assert bad.value.body()["field"] == field


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b'"SOL"', b'{"amount": NaN}', b"\xff\xfe"])
def test_bodies_that_are_not_an_order_object(raw: bytes) -> None:
    with pytest.raises(InputError) as bad:
        parse_order(load_json(raw))
    assert bad.value.field is None and bad.value.status == 400


def test_queries() -> None:
    assert parse_from_seq(None) == 0 and parse_from_seq("7") == 7
    with pytest.raises(InputError):
        parse_from_seq("-1")
    listing = parse_list_query({"status": "confirmed", "limit": "20", "pageToken": "t"})
    assert (listing.status, listing.limit, listing.page_token) == (pb.ORDER_STATUS_CONFIRMED, 20, "t")
    assert parse_list_query({}).limit == 50 and parse_list_query({}).status is None
    for bad in ({"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"status": "nope"}):
        with pytest.raises(InputError):
            parse_list_query(bad)
    quote = parse_quote_query({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1000"})
    assert (quote.token_in, quote.token_out, quote.amount, quote.slippage_bps) == ("SOL", "USDC", "1000", 0)


# -- gRPC errors as HTTP -----------------------------------------------------------------------------------------


def test_service_errors_map_to_http_and_camel_case_fields() -> None:
    bad = OrderServiceError(grpc.StatusCode.INVALID_ARGUMENT, "slippage_bps: must be at most 5000, got 9000")
    assert bad.field == "slippage_bps"
    assert service_error_body(bad) == (
        400,
        {"error": "slippage_bps: must be at most 5000, got 9000", "code": "INVALID_ARGUMENT", "field": "slippageBps"},
    )
    assert service_error_body(OrderServiceError(grpc.StatusCode.NOT_FOUND, "order x not found"))[0] == 404
    assert service_error_body(OrderServiceError(grpc.StatusCode.ALREADY_EXISTS, "key reused"))[0] == 409
    assert service_error_body(OrderServiceError(grpc.StatusCode.INTERNAL, "boom"))[0] == 502
    down = OrderServiceError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", "h:1")
    assert down.is_connection_failure and str(down) == "cannot reach h:1 (UNAVAILABLE)"
    body = {"error": "order service unavailable", "code": "UNAVAILABLE", "field": None}
    assert service_error_body(down) == (503, body)
    store_down = OrderServiceError(grpc.StatusCode.UNAVAILABLE, "database unavailable, nothing was stored")
    assert not store_down.is_connection_failure and str(store_down).startswith("UNAVAILABLE: database")
    assert camel("idempotency_key") == "idempotencyKey" and camel("amount") == "amount"
