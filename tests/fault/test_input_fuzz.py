"""Fault 6: fuzzed ExecuteOrder input. Only OK or INVALID_ARGUMENT come back, nothing is stored for a rejected
request, exactly one order for an accepted one (and it runs to the end), and the service stays healthy."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import FIGURES
from tests.helpers import count_rows
from tests.stack import Stack, Stores

TOKENS = ["SOL", "USDC", "usdt", "JUP", "So11111111111111111111111111111111111111112", "BONK", "wsol"]
junk_amounts = st.one_of(
    st.text(max_size=40),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["1e9", "-0", "0x10", "1_000", " 2 ", "١٢", "1.0000000000000000001", "", "."]),
)
plausible_amounts = st.decimals(min_value=0, max_value=10_000, places=4).map(str)
# Keys are absent, too long, or FRESH: replaced by a new UUID in the test, so accepted requests never collide
# (hypothesis replays the same values, and a reused key with other parameters is rightly ALREADY_EXISTS).
FRESH = "fresh"
keys = st.one_of(st.just(""), st.just(FRESH), st.text(min_size=129, max_size=200))
junk_requests = st.builds(
    pb.ExecuteOrderRequest,
    token_in=st.one_of(st.sampled_from(TOKENS), st.text(max_size=60)),
    token_out=st.one_of(st.sampled_from(TOKENS), st.text(max_size=60)),
    amount=st.one_of(plausible_amounts, junk_amounts),
    slippage_bps=st.one_of(st.integers(min_value=0, max_value=6000), st.integers(min_value=0, max_value=2**32 - 1)),
    idempotency_key=keys,
    order_type=st.one_of(st.sampled_from([0, 1]), st.integers(min_value=0, max_value=9)),
    limit_price=st.one_of(st.just(""), plausible_amounts, junk_amounts),
)
# Half the requests are near-valid, so acceptance (one stored order that runs to the end) is tested as much as refusal.
plausible_requests = st.builds(
    pb.ExecuteOrderRequest,
    token_in=st.sampled_from(TOKENS),
    token_out=st.sampled_from(TOKENS),
    amount=plausible_amounts,
    slippage_bps=st.integers(min_value=0, max_value=10_000),
    idempotency_key=st.sampled_from(["", FRESH]),
    order_type=st.sampled_from([0, 1]),
)
requests = st.one_of(junk_requests, plausible_requests)


@pytest.fixture(scope="module")
def fuzz_stack(stores: Stores) -> Iterator[Stack]:
    """A system of its own: the orders fuzzing places (up to 10,000 SOL each) would move the shared market."""
    s = Stack.start(stores)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sync_stub(fuzz_stack: Stack) -> Iterator[pb_grpc.OrderServiceStub]:
    with grpc.insecure_channel(fuzz_stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


TERMINAL = (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_FAILED, pb.ORDER_STATUS_CANCELLED, pb.ORDER_STATUS_EXPIRED)
# A valid order the market refuses before anything is stored (issue 17's price-impact guard): a refusal, not a bug.
MARKET_REFUSALS = {"PRICE_IMPACT_TOO_HIGH"}


def test_fuzzed_execute_order(sync_stub: pb_grpc.OrderServiceStub, fuzz_stack: Stack) -> None:
    """300 generated requests: each refusal names a field and stores nothing; each acceptance stores exactly one
    order, which runs to a terminal state; the service is SERVING afterwards. One test, so its figures are its own
    whatever else runs."""
    seen: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(req=requests)
    def one(req: pb.ExecuteOrderRequest) -> None:
        if req.idempotency_key == FRESH:
            req.idempotency_key = str(uuid.uuid4())
        before = count_rows(fuzz_stack.database_url, "orders")
        try:
            resp = sync_stub.ExecuteOrder(req, timeout=10)
        except grpc.RpcError as exc:
            seen[exc.code().name] += 1
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                assert any(reason in (exc.details() or "") for reason in MARKET_REFUSALS), (exc.details(), req)
            else:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details(), req)
                field = (exc.details() or "").split(":", 1)[0]
                assert field in {
                    "token_in",
                    "token_out",
                    "amount",
                    "slippage_bps",
                    "idempotency_key",
                    "order_type",
                    "limit_price",
                    "expires_at",
                    "max_price_impact_bps",
                }, exc.details()
            stored = count_rows(fuzz_stack.database_url, "orders") - before
            seen["stored for refused input"] += stored
            assert stored == 0
            return
        seen["OK"] += 1
        assert resp.order_id
        stored = count_rows(fuzz_stack.database_url, "orders") - before
        assert stored == 1, f"{stored} orders stored for one accepted request"
        if req.order_type not in (pb.ORDER_TYPE_UNSPECIFIED, pb.ORDER_TYPE_MARKET):
            # A resting order may wait for its price for ever: its owner ends it (or it has already fired).
            with contextlib.suppress(grpc.RpcError):
                sync_stub.CancelOrder(pb.CancelOrderRequest(order_id=resp.order_id), timeout=10)
        last = None
        for update in sync_stub.WatchOrder(pb.WatchOrderRequest(order_id=resp.order_id), timeout=30):
            last = update.event
        assert last is not None and last.status in TERMINAL, last
        seen["accepted and completed" if last.status == pb.ORDER_STATUS_CONFIRMED else "accepted and failed"] += 1

    one()
    with grpc.insecure_channel(fuzz_stack.grpc_target) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    requests_sent = seen["OK"] + seen["INVALID_ARGUMENT"] + seen["FAILED_PRECONDITION"]
    assert seen["OK"] > 0 and seen["INVALID_ARGUMENT"] > 0, seen  # both sides of the contract were exercised
    FIGURES["fuzzed ExecuteOrder input"] = {
        "requests": requests_sent,
        "accepted": seen["OK"],
        "of those confirmed": seen["accepted and completed"],
        "of those failed": seen["accepted and failed"],
        "refused INVALID_ARGUMENT": seen["INVALID_ARGUMENT"],
        "refused FAILED_PRECONDITION (price impact)": seen["FAILED_PRECONDITION"],
        "stored for refused input": seen["stored for refused input"],
    }
