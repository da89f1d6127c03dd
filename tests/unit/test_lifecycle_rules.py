"""The lifecycle table, backoff, fault draws and the mock chain's pure parts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import base58
import pytest

from workers import chain, faults
from workers.domain import ALLOWED_FROM, FINAL_STATUSES, OrderStatus, can_transition
from workers.middleware.attempts import backoff_ms

HAPPY_PATH = [
    OrderStatus.PENDING,
    OrderStatus.ROUTING,
    OrderStatus.BUILDING,
    OrderStatus.SUBMITTED,
    OrderStatus.CONFIRMED,
]


def test_happy_path_is_allowed_step_by_step() -> None:
    for current, target in itertools.pairwise(HAPPY_PATH):
        assert can_transition(current, target)


def test_final_states_are_final() -> None:
    for final in FINAL_STATUSES:
        assert not any(can_transition(final, target) for target in OrderStatus)


def test_failed_is_reachable_from_every_non_final_state_only() -> None:
    assert {s for s in OrderStatus if can_transition(s, OrderStatus.FAILED)} == set(OrderStatus) - FINAL_STATUSES


def test_no_skipping_stages() -> None:
    assert not can_transition(OrderStatus.PENDING, OrderStatus.BUILDING)
    assert not can_transition(OrderStatus.ROUTING, OrderStatus.SUBMITTED)
    assert not can_transition(OrderStatus.BUILDING, OrderStatus.CONFIRMED)
    assert ALLOWED_FROM[OrderStatus.PENDING] == frozenset()


def test_a_retry_restarts_at_routing_from_any_working_stage() -> None:
    for stage in (OrderStatus.ROUTING, OrderStatus.BUILDING, OrderStatus.SUBMITTED):
        assert can_transition(stage, OrderStatus.ROUTING)


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
