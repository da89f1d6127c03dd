"""Bad input: INVALID_ARGUMENT naming the field, and nothing stored."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from orderengine.v1 import order_service_pb2 as pb
from tests.helpers import count_rows, execute, watch_all
from tests.stack import Stack

GOOD = {"token_in": "SOL", "token_out": "USDC", "amount": "1"}
LIMIT = {"order_type": pb.ORDER_TYPE_LIMIT, "limit_price": "150"}
# A valid mint address that no token of the market has (yet).
NEW_MINT = "6p6xgHyF7AeE6TZkSmFsko444wqoP15icUSqi2jfGiPN"
SNIPE = {"order_type": pb.ORDER_TYPE_SNIPER, "token_out": NEW_MINT}

BAD_ORDERS = [
    ({"amount": ""}, "amount", "required"),
    ({"amount": "0"}, "amount", "greater than zero"),
    ({"amount": "0.000"}, "amount", "greater than zero"),
    ({"amount": "-1"}, "amount", "greater than zero"),
    ({"amount": "abc"}, "amount", "decimal number"),
    ({"amount": "1,5"}, "amount", "decimal number"),
    ({"amount": "NaN"}, "amount", "decimal number"),
    ({"amount": "Infinity"}, "amount", "decimal number"),
    ({"amount": "-Infinity"}, "amount", "greater than zero"),
    ({"amount": "1e3"}, "amount", "decimal number"),
    ({"amount": "1.0000000001"}, "amount", "at most 9"),  # SOL has 9 decimals
    ({"token_in": "USDC", "token_out": "SOL", "amount": "1.0000001"}, "amount", "at most 6"),
    # One rule for every amount, stated in the message: at most 2^63-1 base units.
    ({"amount": "1" + "0" * 30}, "amount", "may be at most 9223372036.854775807 SOL"),
    ({"amount": "10000000000"}, "amount", "may be at most 9223372036.854775807 SOL"),
    ({"token_in": "USDC", "token_out": "SOL", "amount": "1" + "0" * 13}, "amount", "at most 9223372036854.775807 USDC"),
    ({"token_in": "DOGE"}, "token_in", "unknown token"),
    ({"token_out": "NotAMint111111111111111111111111111111111111"}, "token_out", "unknown token"),
    ({"token_in": ""}, "token_in", "required"),
    ({"token_out": "SOL"}, "token_out", "must differ"),
    ({"token_out": "wsol"}, "token_out", "must differ"),
    ({"slippage_bps": 5001}, "slippage_bps", "at most 5000"),
    ({"max_price_impact_bps": 10_001}, "max_price_impact_bps", "at most 10000"),
    ({"idempotency_key": "k" * 129}, "idempotency_key", "at most 128"),
    ({"order_type": 99}, "order_type", "accepted"),
    # Limit and sniper orders (issue 10): every new field, each way it can be wrong.
    ({"order_type": pb.ORDER_TYPE_LIMIT}, "limit_price", "required for a limit order"),
    (LIMIT | {"limit_price": "0"}, "limit_price", "greater than zero"),
    (LIMIT | {"limit_price": "0.000"}, "limit_price", "greater than zero"),
    (LIMIT | {"limit_price": "-150"}, "limit_price", "greater than zero"),
    (LIMIT | {"limit_price": "1." + "1" * 19}, "limit_price", "too many decimal places"),
    (LIMIT | {"limit_price": "1e3"}, "limit_price", "decimal number"),
    (LIMIT | {"limit_price": "NaN"}, "limit_price", "decimal number"),
    (LIMIT | {"limit_price": "9" * 21}, "limit_price", "too large"),
    (LIMIT | {"expires_at": Timestamp(seconds=int(time.time()) - 60)}, "expires_at", "in the future"),
    (LIMIT | {"expires_at": Timestamp(seconds=int(time.time()) + 400 * 86400)}, "expires_at", "at most 365 days"),
    ({"limit_price": "150"}, "limit_price", "limit and sniper orders only"),
    ({"expires_at": Timestamp(seconds=int(time.time()) + 60)}, "expires_at", "limit and sniper orders only"),
    ({"order_type": pb.ORDER_TYPE_SNIPER, "token_out": "NotAMint!"}, "token_out", "mint address"),
    ({"order_type": pb.ORDER_TYPE_SNIPER, "token_out": "0OIl" * 8}, "token_out", "mint address"),
    ({"order_type": pb.ORDER_TYPE_SNIPER, "token_out": "1" * 12}, "token_out", "mint address"),
    ({"order_type": pb.ORDER_TYPE_SNIPER, "token_out": ""}, "token_out", "mint address"),
    ({"order_type": pb.ORDER_TYPE_SNIPER, "token_in": "DOGE", "token_out": NEW_MINT}, "token_in", "unknown token"),
    (SNIPE | {"limit_price": "-1"}, "limit_price", "greater than zero"),
    (SNIPE | {"expires_at": Timestamp(seconds=1)}, "expires_at", "in the future"),
]


@pytest.mark.parametrize(
    ("override", "field", "says"), BAD_ORDERS, ids=[f"{b[1]}={str(b[0])[:30]}" for b in BAD_ORDERS]
)
async def test_bad_order_is_refused_and_nothing_stored(stub, stack: Stack, override, field, says) -> None:
    before = (count_rows(stack.database_url, "orders"), count_rows(stack.database_url, "order_events"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExecuteOrder(pb.ExecuteOrderRequest(**(GOOD | override)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert details.startswith(f"{field}: "), details
    assert says in details, details
    assert (count_rows(stack.database_url, "orders"), count_rows(stack.database_url, "order_events")) == before


async def test_limits_themselves_are_accepted(stub) -> None:
    order_id = await execute(stub, amount="0.000000001", slippage_bps=5000, idempotency_key="k" * 128)
    assert uuid.UUID(order_id)


@pytest.mark.parametrize("bad_id", ["", "42", "not-a-uuid", "' OR 1=1 --", "0" * 100])
async def test_malformed_order_id_is_invalid_argument(stub, bad_id) -> None:
    for call in (
        lambda: stub.GetOrder(pb.GetOrderRequest(order_id=bad_id)),
        lambda: watch_all(stub, bad_id),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("order_id: must be a UUID")


async def test_bad_page_token_and_quote_input(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListOrders(pb.ListOrdersRequest(page_token="garbage"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("page_token: ")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetQuote(pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount="-2"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("amount: ")


async def test_idempotency_key_returns_the_same_order_or_already_exists(stub, stack: Stack) -> None:
    key = f"client-retry-{uuid.uuid4()}"
    first = await execute(stub, amount="0.3", idempotency_key=key)
    again = await execute(stub, amount="0.3", idempotency_key=key)
    assert again == first
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execute(stub, amount="0.4", idempotency_key=key)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    events = await watch_all(stub, first)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]  # one order, one history


@pytest.mark.parametrize(
    ("amount", "limit", "over"),
    [("1000000000", 0, "limit of 1000 bps"), ("10000", 50, "limit of 50 bps")],
    ids=["pool-draining order, default limit", "large order, tight limit"],
)
async def test_order_moving_the_price_too_far_is_refused_before_anything_is_stored(
    stub, stack: Stack, amount: str, limit: int, over: str
) -> None:
    before = (count_rows(stack.database_url, "orders"), count_rows(stack.database_url, "order_events"))
    quoted = await stub.GetQuote(pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount=amount))
    request = pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount=amount, max_price_impact_bps=limit)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ExecuteOrder(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert details.startswith("PRICE_IMPACT_TOO_HIGH: ")
    assert f"by {quoted.route.price_impact_bps} bps" in details and over in details, details
    assert (count_rows(stack.database_url, "orders"), count_rows(stack.database_url, "order_events")) == before


async def test_an_order_within_its_price_impact_limit_is_accepted(stub) -> None:
    order_id = await execute(stub, amount="1", max_price_impact_bps=5)  # 1 SOL barely moves the deep SOL/USDC pools
    events = await watch_all(stub, order_id)
    assert events[-1].status == pb.ORDER_STATUS_CONFIRMED
