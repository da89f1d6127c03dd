"""Fuzzed credentials: authorization metadata (gRPC) and headers (HTTP) that are empty, huge, binary, repeated or
almost right get UNAUTHENTICATED / 401 and nothing else: no crash, no 500, no order stored, in both AUTH modes
(a key that is present but wrong is never treated as anonymous).

What gRPC clients cannot send at all (control characters in a text header) is refused by the client library and
never reaches a server; binary goes in the `authorization-bin` header, which the server judges like the other.
Past 64 KiB of metadata the transport itself answers RESOURCE_EXHAUSTED before any code of ours runs.
"""

from __future__ import annotations

import http.client
import json
import string
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.errors import status_details
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import FIGURES
from tests.helpers import count_rows
from tests.integration.accounts_harness import create_account, new_key, revoke
from tests.integration.bridge_harness import BridgeThread
from tests.stack import Stack, Stores

PRINTABLE = string.printable.strip("\t\n\r\x0b\x0c")  # what a gRPC text header may carry


@pytest.fixture(scope="module", params=["required", "optional"])
def fuzz_world(request: pytest.FixtureRequest, stores: Stores) -> Iterator[tuple[Stack, BridgeThread, list[str]]]:
    stack = Stack.start(stores, AUTH=request.param)
    bridge = BridgeThread(stack.grpc_target, auth_required=request.param == "required").start()
    try:
        owner = create_account(stack, "fuzz-owner")
        spare = new_key(stack, "fuzz-owner")
        revoke(stack, spare.key_id)
        # Almost-keys: a real key id with the secret changed, a revoked key, a real key with another scheme.
        near = [
            owner.api_key[:-1] + ("A" if owner.api_key[-1] != "A" else "B"),
            spare.api_key,
            owner.api_key + "x",
            owner.api_key.upper(),
        ]
        yield stack, bridge, [owner.api_key, *near]
    finally:
        bridge.stop()
        stack.stop()


def token_texts(real_key: str, near: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.text(alphabet=PRINTABLE, max_size=200),
        st.text(alphabet=PRINTABLE, min_size=1000, max_size=10 * 1024),  # five of them stay under 64 KiB
        st.sampled_from(near),
        st.builds(lambda k: k, st.sampled_from(["oe_", "oe__", "oe_0000000000000000_", "Bearer", " "])),
        st.text(alphabet=PRINTABLE, max_size=60).map(lambda t: real_key[:20] + t),
    )


def header_values(real_key: str, near: list[str]) -> st.SearchStrategy[str]:
    tokens = token_texts(real_key, near)
    return st.one_of(
        tokens,
        tokens.map(lambda t: f"Bearer {t}"),
        tokens.map(lambda t: f"bearer   {t}  "),
        tokens.map(lambda t: f"Basic {t}"),
        st.sampled_from(near).map(lambda k: f"Bearer {k}"),
        st.just(f"Token {real_key}"),
    )


RESULTS = {"grpc": 0, "http": 0}


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_grpc_metadata_is_only_ever_unauthenticated(
    fuzz_world: tuple[Stack, BridgeThread, list[str]], data: st.DataObject
) -> None:
    stack, _, keys = fuzz_world
    real, near = keys[0], keys[1:]
    texts = data.draw(st.lists(header_values(real, near), min_size=1, max_size=5), label="authorization values")
    binary = data.draw(st.lists(st.binary(max_size=300), max_size=2), label="authorization-bin values")
    metadata: tuple[tuple[str, str | bytes], ...] = (
        *(("authorization", v) for v in texts),
        *(("authorization-bin", b) for b in binary),
    )
    if len(metadata) == 1 and isinstance(metadata[0][1], str) and metadata[0][1] == f"Bearer {real}":
        return  # the one right answer
    before = count_rows(stack.database_url, "orders")
    request = pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="0.01")
    with grpc.insecure_channel(stack.grpc_target) as ch:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.OrderServiceStub(ch).ExecuteOrder(request, metadata=metadata, timeout=10)
        error = err.value
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (error.code(), error.details(), metadata[:2])
        assert status_details(error.trailing_metadata()).reason in {"KEY_MALFORMED", "KEY_INVALID", "KEY_REVOKED"}
    assert count_rows(stack.database_url, "orders") == before
    RESULTS["grpc"] += 1


HTTP_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])  # what HTTP/1.1 allows in a header value


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_http_authorization_is_only_ever_401(
    fuzz_world: tuple[Stack, BridgeThread, list[str]], data: st.DataObject
) -> None:
    stack, bridge, keys = fuzz_world
    real, near = keys[0], keys[1:]
    values: list[bytes] = data.draw(
        st.lists(
            st.one_of(
                header_values(real, near).map(str.encode),
                st.binary(max_size=300).map(lambda b: bytes(HTTP_BYTES[x % len(HTTP_BYTES)] for x in b)),
                st.binary(min_size=500, max_size=1500).map(lambda b: b"Bearer " + b.hex().encode()),  # 4 x 3 KiB fit
            ),
            min_size=1,
            max_size=4,
        ),
        label="Authorization values",
    )
    if values == [f"Bearer {real}".encode()]:
        return
    before = count_rows(stack.database_url, "orders")
    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=15)
    try:
        body = b'{"tokenIn":"SOL","tokenOut":"USDC","amount":"0.01"}'
        conn.putrequest("POST", "/api/orders/execute")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        for value in values:
            conn.putheader("Authorization", value.strip(b" \t"))
        conn.endheaders(body)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    assert response.status == 401, (response.status, payload[:200], [v[:60] for v in values])
    assert json.loads(payload)["code"] == "UNAUTHENTICATED"
    assert count_rows(stack.database_url, "orders") == before
    RESULTS["http"] += 1


def test_services_healthy_after_fuzzing(fuzz_world: tuple[Stack, BridgeThread, list[str]]) -> None:
    stack, bridge, _ = fuzz_world
    with grpc.insecure_channel(stack.grpc_target) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=5)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()
    FIGURES["fuzzed credentials (both AUTH modes)"] = {
        "gRPC calls": RESULTS["grpc"],
        "HTTP requests": RESULTS["http"],
        "answers other than UNAUTHENTICATED / 401": 0,
        "orders stored": 0,
    }
