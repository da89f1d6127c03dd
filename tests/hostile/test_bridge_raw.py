"""The bridge's HTTP surface below the schema: raw JSON text (lone surrogates, numbers no float holds, nesting
deeper than Python recursion, bytes that are not UTF-8), query strings and paths with odd encodings.

Schemathesis sends what the description allows and what it forbids by type; this sends what a hostile client
writes by hand. Every answer is a 4xx in the API's error shape or a success, never a 5xx or a dropped connection.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.conftest import ErrorRecords, assert_no_bug_logged
from tests.hostile.tally import TALLY, fuzz_settings
from tests.integration.bridge_harness import BridgeThread
from tests.stack import Stack

# JSON number literals as a client may write them: no float holds 1e999999999, and 5000 digits pass Python's
# int-from-text limit.
NUMBERS = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,10})?", fullmatch=True),
    st.sampled_from(["1e999999999", "-1e-999999999", "9" * 5000, "1E+40", "1e41", "0e99999", "50", "1.5"]),
)
# Strings as JSON text: json.dumps writes a lone surrogate as the escape "\ud800", exactly what reaches a server.
STRINGS = st.one_of(
    st.text(st.characters(codec=None), max_size=30),
    st.sampled_from(["SOL", "USDC", "\ud800", "SOL\udfff", "\x00", "", " ", "1" * 20_000, "²", "١٢", "1e3"]),
).map(json.dumps)
SCALARS = st.one_of(st.sampled_from(["null", "true", "false"]), NUMBERS, STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.dictionaries(STRINGS, inner, max_size=3).map(
            lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)
ORDER_KEYS = ["tokenIn", "tokenOut", "amount", "slippageBps", "idempotencyKey"]


@st.composite
def order_bodies(draw: Any) -> bytes:
    """An order object whose fields are sensible or hostile, as JSON text."""
    fields = {"tokenIn": '"SOL"', "tokenOut": '"USDC"', "amount": "1"}
    for key in draw(st.lists(st.sampled_from(ORDER_KEYS), min_size=1, max_size=3, unique=True)):
        fields[key] = draw(VALUES)
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}").encode()


BODIES = st.one_of(
    order_bodies(),
    VALUES.map(str.encode),
    st.binary(max_size=200),
    st.integers(1, 50_000).map(lambda n: b"[" * n),
    st.sampled_from([b"", b"{", b'{"tokenIn": "SOL"', b"\xff\xfe{}", b'"\\ud800"', b"{}" * 10_000]),
)


def encoded(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


QUERY_VALUES = st.one_of(
    st.text(st.characters(codec=None), max_size=20).map(encoded),
    st.sampled_from(
        ["", "%", "%zz", "%FF", "%ED%A0%80", "%00", "9" * 30, "-1", "1e3", "%C2%B2", "%D9%A1%D9%A2", "+1", "0x10"]
    ),
    NUMBERS.map(encoded),
)
QUERY_KEYS = ["tokenIn", "tokenOut", "amount", "slippageBps", "status", "limit", "pageToken"]


@st.composite
def targets(draw: Any) -> str:
    """A GET target: a listing, a quote or an order, with hostile query values or a hostile id."""
    kind: str = draw(st.sampled_from(["/api/orders", "/api/quote", "/api/orders/"]))
    if kind == "/api/orders/":
        order_id: str = draw(QUERY_VALUES.filter(bool))
        return kind + order_id
    params: dict[str, str] = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"} if kind == "/api/quote" else {}
    for key in draw(st.lists(st.sampled_from(QUERY_KEYS), max_size=3, unique=True)):
        params[key] = draw(QUERY_VALUES)
    return kind + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def request(bridge: BridgeThread, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# The error body's keys (docs/openapi.yaml): `reason` and `retryAfterSeconds` when the service gave them.
ERROR_KEYS = {"error", "code", "field", "reason", "retryAfterSeconds"}


def judge(interface: str, what: object, status: int, body: bytes) -> None:
    TALLY.record(interface, str(status), what, server_error=status >= 500)
    assert status < 500, f"{status} for {what!r}: {body[:300]!r}"
    if status >= 400:
        error = json.loads(body)
        assert {"error", "code", "field"} <= set(error) <= ERROR_KEYS and error["error"], error


@fuzz_settings(150)
@given(body=BODIES)
def test_hostile_order_bodies(bridge: BridgeThread, body: bytes) -> None:
    status, answer = request(bridge, "POST", "/api/orders/execute", body)
    judge("HTTP POST /api/orders/execute (raw bodies)", body, status, answer)


@fuzz_settings(150)
@given(target=targets())
def test_hostile_queries_and_paths(bridge: BridgeThread, target: str) -> None:
    status, answer = request(bridge, "GET", target)
    judge("HTTP GET (raw queries and paths)", target, status, answer)


def test_no_bug_logged(hostile_stack: Stack, bridge_errors: ErrorRecords) -> None:
    assert_no_bug_logged(hostile_stack, bridge_errors)
