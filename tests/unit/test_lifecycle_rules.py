"""The lifecycle table and what is derived from it, backoff, fault draws and the mock chain's pure parts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import base58
import pytest

from orderengine.v1 import order_service_pb2 as pb
from server.convert import ORDER_TYPE_FROM_PB, ORDER_TYPE_TO_PB, STATUS_FROM_PB, STATUS_TO_PB
from workers import chain, faults
from workers.domain import (
    FINAL_STATUSES,
    INITIAL_STATUS,
    NON_FINAL_STATUSES,
    TRANSITIONS,
    LifecycleEvent,
    OrderStatus,
    OrderType,
    moves,
)
from workers.middleware.attempts import backoff_ms

README = Path(__file__).resolve().parents[2] / "README.md"

HAPPY_PATH = [
    OrderStatus.PENDING,
    OrderStatus.ROUTING,
    OrderStatus.BUILDING,
    OrderStatus.SUBMITTED,
    OrderStatus.CONFIRMED,
]


def allowed(current: OrderStatus, target: OrderStatus) -> bool:
    """Some event takes an order from `current` to `target`."""
    return any(TRANSITIONS.get((current, event)) is target for event in LifecycleEvent)


def test_happy_path_is_allowed_step_by_step() -> None:
    assert HAPPY_PATH[0] is INITIAL_STATUS
    for current, target in itertools.pairwise(HAPPY_PATH):
        assert allowed(current, target)


def test_final_states_are_final() -> None:
    assert {OrderStatus.CONFIRMED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.EXPIRED} == FINAL_STATUSES
    for final in FINAL_STATUSES:
        assert not any(allowed(final, target) for target in OrderStatus)
        assert final.is_final


def test_failed_is_reachable_from_every_non_final_state_only() -> None:
    assert {s for s in OrderStatus if allowed(s, OrderStatus.FAILED)} == set(OrderStatus) - FINAL_STATUSES
    assert set(moves(LifecycleEvent.FAIL)) == set(NON_FINAL_STATUSES)


def test_no_skipping_stages() -> None:
    assert not allowed(OrderStatus.PENDING, OrderStatus.BUILDING)
    assert not allowed(OrderStatus.ROUTING, OrderStatus.SUBMITTED)
    assert not allowed(OrderStatus.BUILDING, OrderStatus.CONFIRMED)
    assert not any(allowed(s, INITIAL_STATUS) for s in OrderStatus)  # pending only at creation


def test_a_retry_restarts_at_routing_from_any_working_stage() -> None:
    for stage in (OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED):
        assert allowed(stage, OrderStatus.ROUTING)
    assert moves(LifecycleEvent.RETRY) == dict.fromkeys(
        (OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED), OrderStatus.ROUTING
    )
    assert INITIAL_STATUS not in moves(LifecycleEvent.RETRY)  # an order that never started has no attempt to retry


def test_every_event_and_status_takes_part() -> None:
    assert {event for _, event in TRANSITIONS} == set(LifecycleEvent)
    reachable = {INITIAL_STATUS} | set(TRANSITIONS.values())
    assert reachable == set(OrderStatus)


def test_resting_orders_wait_in_open_and_leave_it_one_way_each() -> None:
    assert moves(LifecycleEvent.REST) == {OrderStatus.PENDING: OrderStatus.OPEN}
    assert moves(LifecycleEvent.TRIGGER) == {OrderStatus.OPEN: OrderStatus.ROUTING}
    # Cancel only before execution starts: a transaction in flight cannot be called back.
    assert moves(LifecycleEvent.CANCEL) == dict.fromkeys((OrderStatus.PENDING, OrderStatus.OPEN), OrderStatus.CANCELLED)
    assert set(moves(LifecycleEvent.EXPIRE)) == {OrderStatus.PENDING, OrderStatus.OPEN}
    # A missed limit goes back to waiting from any working stage, never from a final one.
    assert moves(LifecycleEvent.REOPEN) == dict.fromkeys(
        (OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED), OrderStatus.OPEN
    )
    # Trigger, cancel and expire all leave `open`: whichever the guarded UPDATE applies first, the others match
    # no row, so a race ends in exactly one story.
    leaving_open = {e for (s, e) in TRANSITIONS if s is OrderStatus.OPEN}
    assert {LifecycleEvent.TRIGGER, LifecycleEvent.CANCEL, LifecycleEvent.EXPIRE} <= leaving_open


def test_moves_are_the_tables_rows_by_event() -> None:
    rows = {(source, event, target) for event in LifecycleEvent for source, target in moves(event).items()}
    assert rows == {(source, event, target) for (source, event), target in TRANSITIONS.items()}


def lifecycle_markdown() -> str:
    """The README's lifecycle table, as the domain's table renders it."""
    lines = ["| from | event | to |", "| --- | --- | --- |"]
    lines += [f"| `{s}` | `{e}` | `{t}` |" for (s, e), t in TRANSITIONS.items()]
    return "\n".join(lines)


def test_the_readme_shows_the_table_as_declared() -> None:
    readme = "\n".join(line.strip() for line in README.read_text().splitlines())
    assert lifecycle_markdown() in readme, "README's table differs from workers/domain.py:\n" + lifecycle_markdown()


def test_protobuf_conversions_cover_every_status_and_type_both_ways() -> None:
    assert set(STATUS_TO_PB) == set(OrderStatus)
    assert {STATUS_FROM_PB[v] for v in STATUS_TO_PB.values()} == set(OrderStatus)
    assert set(pb.OrderStatus.values()) == {pb.ORDER_STATUS_UNSPECIFIED, *STATUS_TO_PB.values()}
    assert set(ORDER_TYPE_TO_PB) == set(OrderType)
    assert {ORDER_TYPE_FROM_PB[v] for v in ORDER_TYPE_TO_PB.values()} == set(OrderType)


def test_the_contract_marks_exactly_the_final_statuses_terminal() -> None:
    terminal = {v.number for v in pb.OrderStatus.DESCRIPTOR.values if v.GetOptions().Extensions[pb.terminal]}
    assert terminal == {STATUS_TO_PB[s] for s in FINAL_STATUSES}


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1000), (2, 2000), (3, 4000), (4, 4000), (10, 4000)])
def test_backoff_doubles_from_one_second_and_caps_at_four(attempt: int, expected: int) -> None:
    assert backoff_ms(attempt, 1000, 4000) == expected


def test_fault_draws_are_seeded_and_uniformish() -> None:
    assert faults.draw(1, "a", 2) == faults.draw(1, "a", 2)
    assert faults.draw(1, "a", 2) != faults.draw(2, "a", 2)
    draws = [faults.draw(7, "venue", i) for i in range(4000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.45 < sum(draws) / len(draws) < 0.55
    assert not faults.venue_fails(7, 0.0, "o", 1, "raydium")
    assert faults.venue_fails(7, 1.0, "o", 1, "raydium")


def test_signatures_are_64_bytes_of_base58_and_stable_per_attempt() -> None:
    sig = chain.signature_for(7, "order", 1)
    assert len(base58.b58decode(sig)) == 64
    assert chain.signature_for(7, "order", 1) == sig
    assert chain.signature_for(7, "order", 2) != sig


def test_realistic_chain_confirms_in_slots_before_expiry() -> None:
    profile = chain.ChainProfile.for_latency("realistic")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sub = chain.plan_submission(profile, 7, 0.0, chain.signature_for(7, "o", 1), now)
    assert sub.lands_at is not None
    assert timedelta(seconds=2) <= sub.lands_at - now <= timedelta(seconds=2.8)
    assert sub.expires_at - now == timedelta(milliseconds=chain.SLOT_MS * chain.BLOCKHASH_VALID_SLOTS)
    dropped = chain.plan_submission(profile, 7, 1.0, chain.signature_for(7, "o", 1), now)
    assert dropped.lands_at is None


def test_instructions_wrap_and_unwrap_native_sol_only() -> None:
    sol_in = chain.instructions_for(True, False, 1)
    assert sol_in.index("wrap_sol") < sol_in.index("swap") < sol_in.index("unwrap_sol")
    sol_out = chain.instructions_for(False, True, 2)
    assert "wrap_sol" not in sol_out and sol_out.count("swap") == 2 and sol_out[-1] == "unwrap_sol"
    spl = chain.instructions_for(False, False, 1)
    assert "wrap_sol" not in spl and "unwrap_sol" not in spl
