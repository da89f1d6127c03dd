"""Byte-level fuzzing of every OrderService RPC: arbitrary bytes, messages whose fields take hostile values, valid
messages mutated byte by byte, and every string field with NUL bytes, lone surrogates, huge and empty values.

Only client codes come back, nothing is stored for a refusal, the server keeps serving and logs no bug.
"""

from __future__ import annotations

import time
from typing import cast

import grpc
import psycopg
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.hostile.conftest import assert_no_bug_logged, assert_serving, stored_orders
from tests.hostile.tally import TALLY, fuzz_settings
from tests.hostile.wire import HOSTILE_TEXT, OVERSIZED, hostile_payloads, length_delimited
from tests.stack import Stack

SERVICE = pb.DESCRIPTOR.services_by_name["OrderService"]
METHODS: dict[str, MethodDescriptor] = {m.name: m for m in SERVICE.methods}
# What a client may hear for what it sent. Never UNKNOWN, INTERNAL, UNAVAILABLE (nothing is down) or a timeout.
CLIENT_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
CALL_TIMEOUT_S = 20
MAX_DETAILS = 500


def call_raw(channel: grpc.Channel, method: MethodDescriptor, payload: bytes) -> tuple[grpc.StatusCode, str]:
    """Sends `payload` as the request bytes (no serializer: what a hostile client puts on the wire)."""
    path = f"/{SERVICE.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path, None, None)(payload, timeout=CALL_TIMEOUT_S):
                pass
        else:
            channel.unary_unary(path, None, None)(payload, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as e:
        call = cast(grpc.Call, e)
        return call.code(), call.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.fixture(scope="module")
def valid_requests(sync_stub: pb_grpc.OrderServiceStub, final_orders: list[str]) -> dict[str, list[bytes]]:
    """Well-formed requests of each RPC, for mutation: real ids of finished orders, a real page token."""
    token = sync_stub.ListOrders(pb.ListOrdersRequest(page_size=1), timeout=10).next_page_token
    assert token, "two orders exist, so a one-order page has a next page"
    messages: dict[str, list[Message]] = {
        "ExecuteOrder": [
            pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="0.001"),
            pb.ExecuteOrderRequest(
                token_in="USDC",
                token_out="JUP",
                amount="1.5",
                slippage_bps=100,
                idempotency_key="k",
                order_type=pb.ORDER_TYPE_MARKET,
            ),
            # A limit far above the market (it rests, never fires) with an expiry: fields 7 and 8 get mutated too.
            pb.ExecuteOrderRequest(
                token_in="SOL",
                token_out="USDC",
                amount="0.001",
                order_type=pb.ORDER_TYPE_LIMIT,
                limit_price="1000000",
                expires_at=Timestamp(seconds=int(time.time()) + 3600),
            ),
        ],
        # Final orders: every cancel is refused (FAILED_PRECONDITION), so the fuzzer changes nothing it judges.
        "CancelOrder": [pb.CancelOrderRequest(order_id=i) for i in final_orders],
        "WatchOrder": [pb.WatchOrderRequest(order_id=i, from_seq=n) for i in final_orders for n in (0, 2)],
        "GetOrder": [pb.GetOrderRequest(order_id=i) for i in final_orders],
        "ListOrders": [
            pb.ListOrdersRequest(page_size=2, page_token=token, status=pb.ORDER_STATUS_CONFIRMED),
            pb.ListOrdersRequest(page_size=1),
        ],
        "GetQuote": [pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount="2", slippage_bps=30)],
    }
    assert set(messages) == set(METHODS), "a new RPC needs valid requests here to be fuzzed"
    return {name: [m.SerializeToString() for m in ms] for name, ms in messages.items()}


def is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def judge(
    rpc: str, interface: str, payload: bytes, outcome: tuple[grpc.StatusCode, str], before: int, after: int
) -> None:
    code, details = outcome
    server_error = code not in CLIENT_CODES
    TALLY.record(interface, code.name, payload, server_error=server_error)
    assert not server_error, f"{rpc} answered {code.name} ({details[:300]}) to {payload[:200]!r}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert details.strip(), f"{rpc}: INVALID_ARGUMENT without saying why"
        # The reason travels in a trailer that clients cap (16 KiB by default): an echoed input must be clipped.
        assert len(details) <= MAX_DETAILS, f"{rpc}: {len(details)} characters of details: {details[:200]}"
    accepted_order = rpc == "ExecuteOrder" and code == grpc.StatusCode.OK
    if after != before and not accepted_order:
        TALLY.stored[interface] += 1
    assert after == before or accepted_order, f"{rpc} stored an order for a refusal ({code.name}) of {payload[:200]!r}"


@pytest.mark.parametrize("rpc", sorted(METHODS))
@fuzz_settings(120)
@given(data=st.data())
def test_hostile_bytes_get_only_client_codes(
    rpc: str,
    data: st.DataObject,
    grpc_channel: grpc.Channel,
    db: psycopg.Connection,
    valid_requests: dict[str, list[bytes]],
) -> None:
    method = METHODS[rpc]
    payload = data.draw(hostile_payloads(method.input_type, valid_requests[rpc]), label="request bytes")
    before = stored_orders(db)
    outcome = call_raw(grpc_channel, method, payload)
    judge(rpc, f"gRPC {rpc} (wire fuzz)", payload, outcome, before, stored_orders(db))


@pytest.mark.parametrize("rpc", sorted(METHODS))
def test_every_string_field_with_hostile_text(
    rpc: str,
    grpc_channel: grpc.Channel,
    db: psycopg.Connection,
    valid_requests: dict[str, list[bytes]],
    hostile_stack: Stack,
) -> None:
    """Each string field of the request set to each HOSTILE_TEXT value (the rest of the message valid), and the
    whole request past grpc's size limit."""
    method = METHODS[rpc]
    base = valid_requests[rpc][0]
    strings = [f for f in method.input_type.fields if f.type == FieldDescriptor.TYPE_STRING]
    assert strings, f"{rpc} has no string field"
    for field in strings:
        for name, value in HOSTILE_TEXT.items():
            payload = base + length_delimited(field.number, value)  # a repeated scalar field: the last one wins
            before = stored_orders(db)
            outcome = call_raw(grpc_channel, method, payload)
            judge(rpc, f"gRPC {rpc} (hostile strings)", payload, outcome, before, stored_orders(db))
            if not is_utf8(value):
                assert outcome[0] == grpc.StatusCode.INVALID_ARGUMENT, (field.name, name, outcome)
    before = stored_orders(db)
    outcome = call_raw(grpc_channel, method, base + length_delimited(strings[0].number, OVERSIZED))
    judge(rpc, f"gRPC {rpc} (hostile strings)", OVERSIZED[:8], outcome, before, stored_orders(db))
    assert outcome[0] == grpc.StatusCode.RESOURCE_EXHAUSTED, outcome


def test_server_still_serving_and_logged_no_bug(grpc_channel: grpc.Channel, hostile_stack: Stack) -> None:
    assert_serving(grpc_channel)
    order_id = pb_grpc.OrderServiceStub(grpc_channel).ExecuteOrder(
        pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="0.5"), timeout=10
    )
    assert order_id.order_id
    assert_no_bug_logged(hostile_stack)
