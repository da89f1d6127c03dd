"""Retries as SPEC section 3 says, on a seeded flaky market whose every outcome the test predicts first.

The market draws each venue failure and each dropped transaction from a hash of (seed, order, attempt), so the
test computes with the same functions which orders will fail on which attempt, then checks the engine did
exactly that: each retry visible with its attempt number and cause, `failed` once, after the last attempt. Both
brokers (Redis, RabbitMQ) carry the retries' delayed messages, so each test runs on each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.conftest import FLAKY_FAILURE_RATE, MARKET_SEED
from tests.fault.tools import FIGURES
from tests.helpers import assert_gap_free, count_rows, execute, watch_all
from tests.stack import Stack, Stores
from workers import chain, faults

MAX_ATTEMPTS = 3
# Enough orders that one whose three attempts all fail (about 5 % each) turns up with near certainty.
SUBMISSIONS_CAP = 250
DEXES = ("raydium", "meteora")


def silent_venues(order_id: str, attempt: int) -> list[str]:
    return [dex for dex in DEXES if faults.venue_fails(MARKET_SEED, FLAKY_FAILURE_RATE, order_id, attempt, dex)]


def predicted_failure(order_id: str, attempt: int) -> str | None:
    """The error an attempt will end with, or None if it will confirm. A venue that does not answer is routed
    around (SOL/USDC trades on both); only when neither answers is the attempt retried."""
    if len(silent_venues(order_id, attempt)) == len(DEXES):
        return "DEX_UNAVAILABLE"
    signature = chain.signature_for(MARKET_SEED, order_id, attempt)
    if faults.transaction_dropped(MARKET_SEED, FLAKY_FAILURE_RATE, signature):
        return "TX_EXPIRED"
    return None


def predicted_outcome(order_id: str) -> list[str | None]:
    """The error of each attempt until one confirms or attempts run out."""
    outcome: list[str | None] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcome.append(predicted_failure(order_id, attempt))
        if outcome[-1] is None:
            break
    return outcome


def expected_statuses(outcome: list[str | None]) -> list[tuple[int, int]]:
    """(status, attempt) for every event the outcome implies."""
    events: list[tuple[int, int]] = [(pb.ORDER_STATUS_PENDING, 1)]
    for attempt, error in enumerate(outcome, start=1):
        events.append((pb.ORDER_STATUS_ROUTING, attempt))
        if error == "DEX_UNAVAILABLE":
            continue
        events += [(pb.ORDER_STATUS_BUILDING, attempt), (pb.ORDER_STATUS_SUBMITTED, attempt)]
        if error is None:
            events.append((pb.ORDER_STATUS_CONFIRMED, attempt))
    if outcome[-1] is not None:
        events.append((pb.ORDER_STATUS_FAILED, len(outcome)))
    return events


async def find_orders(flaky_stub, want) -> list[tuple[str, list[str | None]]]:
    """Places orders until `want(order_id, outcome)` holds for one; returns every order placed with its
    prediction."""
    placed = []
    for _ in range(SUBMISSIONS_CAP):
        order_id = await execute(flaky_stub, "SOL", "USDC", "0.25")
        placed.append((order_id, predicted_outcome(order_id)))
        if want(*placed[-1]):
            return placed
    pytest.fail(f"no order with the wanted outcome among {SUBMISSIONS_CAP}")


def check_history(events: list[pb.OrderEvent], outcome: list[str | None]) -> None:
    assert [(e.status, e.attempt) for e in events] == expected_statuses(outcome)
    assert_gap_free(events)
    # Each building event names the venues its attempt routed without, and its route uses none of them.
    for e in events:
        if e.status == pb.ORDER_STATUS_BUILDING:
            silent = silent_venues(e.order_id, e.attempt)
            assert [pb.Dex.Name(v.dex) for v in e.skipped_venues] == [f"DEX_{d.upper()}" for d in silent]
            assert all("did not answer" in v.reason for v in e.skipped_venues)
            assert not {leg.dex for leg in e.route.legs} & {v.dex for v in e.skipped_venues}
        else:
            assert not e.skipped_venues
    # Each retry's first event names the error that caused it, as retryable; nothing else carries an error...
    for e in events:
        if e.status == pb.ORDER_STATUS_ROUTING and e.attempt > 1:
            assert e.error.code == outcome[e.attempt - 2] and e.error.retryable and e.error.message
        elif e.status != pb.ORDER_STATUS_FAILED:
            assert not e.HasField("error")
    # ...but `failed`, which comes exactly once, last, with the cause of the last attempt.
    failed = [e for e in events if e.status == pb.ORDER_STATUS_FAILED]
    if outcome[-1] is None:
        assert not failed and events[-1].status == pb.ORDER_STATUS_CONFIRMED
    else:
        assert len(failed) == 1 and events[-1] is failed[0]
        assert failed[0].error.code == outcome[-1] and not failed[0].error.retryable
        assert f"{MAX_ATTEMPTS} attempts" in failed[0].error.message


async def test_a_silent_venue_is_routed_around_and_named(flaky_stub) -> None:
    # P ~ 0.42 per order that exactly one venue is silent on the first attempt (and the other answers)
    placed = await find_orders(flaky_stub, lambda order_id, _: len(silent_venues(order_id, 1)) == 1)
    for order_id, outcome in placed:
        check_history(await watch_all(flaky_stub, order_id), outcome)


async def test_retried_order_confirms_with_the_retry_visible(broker_flaky_stub) -> None:
    flaky_stub = broker_flaky_stub
    placed = await find_orders(flaky_stub, lambda _, o: len(o) > 1 and o[-1] is None)
    for order_id, outcome in placed:
        check_history(await watch_all(flaky_stub, order_id), outcome)


async def test_order_whose_retries_run_out_fails_exactly_once(broker_flaky_stub, broker_flaky_stack: Stack) -> None:
    flaky_stub, flaky_stack = broker_flaky_stub, broker_flaky_stack
    placed = await find_orders(flaky_stub, lambda _, o: len(o) == MAX_ATTEMPTS and o[-1] is not None)
    for order_id, outcome in placed:
        check_history(await watch_all(flaky_stub, order_id), outcome)
        order = (await flaky_stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
        expected = pb.ORDER_STATUS_CONFIRMED if outcome[-1] is None else pb.ORDER_STATUS_FAILED
        assert order.status == expected and order.attempt == len(outcome)
    # Only confirmed orders settled on the mock chain, each exactly once.
    ids = ",".join(f"'{oid}'" for oid, _ in placed)
    confirmed = sum(1 for _, o in placed if o[-1] is None)
    assert count_rows(flaky_stack.database_url, f"settlements WHERE order_id IN ({ids})") == confirmed


# -- backoff as it happens -----------------------------------------------------------------------------------------

BACKOFF_MS = {1: 1000, 2: 2000}  # after attempt n fails: min_backoff * 2**(n-1), as README states


@pytest.fixture(scope="module")
def backoff_stack(stores: Stores) -> Iterator[Stack]:
    """The flaky market with the default backoff (the shared flaky system uses 20 ms to keep the suite quick)."""
    s = Stack.start(
        stores, MARKET_FAILURE_RATE=str(FLAKY_FAILURE_RATE), RETRY_MIN_BACKOFF_MS="1000", RETRY_MAX_BACKOFF_MS="4000"
    )
    yield s
    s.stop()


async def test_each_retry_waits_its_backoff_after_the_failure(backoff_stack: Stack) -> None:
    async with grpc.aio.insecure_channel(backoff_stack.grpc_target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        placed = await find_orders(stub, lambda _order_id, o: len(o) == MAX_ATTEMPTS)
        order_id, outcome = placed[-1]
        events = await watch_all(stub, order_id)
    check_history(events, outcome)
    waited: dict[int, float] = {}
    for retry, after in itertools.pairwise(events):
        if retry.status == pb.ORDER_STATUS_ROUTING and retry.attempt > 1:
            # The retry event is written when attempt n-1 fails; the next one only once attempt n has run.
            waited[retry.attempt] = (after.time.ToNanoseconds() - retry.time.ToNanoseconds()) / 1e6
    assert waited.keys() == {2, 3}, events
    for attempt, ms in waited.items():
        assert ms >= BACKOFF_MS[attempt - 1], f"attempt {attempt} began {ms:.0f} ms after the failure"
    FIGURES["retry backoff"] = {f"attempt {a} began after the failure (ms)": round(ms) for a, ms in waited.items()}
