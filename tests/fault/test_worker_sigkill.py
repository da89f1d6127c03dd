"""Fault 1: a worker is SIGKILLed with orders in flight; a new worker finishes every one, exactly once.

Two mechanisms can bring back what the dead worker held, and each is proven on its own: the broker's heartbeat
requeue with the reconciler off, the reconciler with the heartbeat timeout far beyond the test's patience, and
both together as deployed. Which one did the work is read from the database: the reconciler stamps `nudged_at` on
every order it re-drives.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.fault.tools import (
    FIGURES,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    non_final,
    place_orders,
    reconciled,
    start_fault_stack,
    watch_many,
)
from tests.stack import Stores

ORDERS = 120
NEVER_MS = "600000"  # ten minutes: longer than the test waits, so this mechanism cannot be what recovered
NEVER_S = "600"
# The heartbeat requeue runs in broker maintenance; at Dramatiq's default chance (0.1% of broker commands) it can
# come half a minute after the timeout, so the heartbeat-alone variant makes maintenance run on 10% of commands.
MECHANISMS = {
    "heartbeat requeue alone": {"RECONCILE_IDLE_SECONDS": NEVER_S, "BROKER_MAINTENANCE_CHANCE": "100000"},
    "reconciler alone": {"BROKER_HEARTBEAT_TIMEOUT_MS": NEVER_MS},
    "heartbeat requeue and reconciler": {},
}


@pytest.mark.parametrize("mechanism", list(MECHANISMS))
async def test_sigkill_worker_with_orders_in_flight(fault_stores: Stores, mechanism: str) -> None:
    stack = start_fault_stack(fault_stores, **MECHANISMS[mechanism])
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        worker = stack.processes["worker"]
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait()
        in_flight = non_final(stack.database_url)  # nothing moves these while no worker runs
        assert in_flight >= ORDERS // 2, f"only {in_flight} orders in flight at the kill"
        stack.spawn("worker-after-kill", "worker")

        # Ninety seconds: recovery by a mechanism that is switched off would take ten minutes.
        watched = await watch_many(stack.grpc_target, order_ids, within=90)
        recovered_s = time.monotonic() - killed_at

        check = check_ledger(stack)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        assert_each_event_once(watched)
        nudged = reconciled(stack.database_url)
        if mechanism == "heartbeat requeue alone":
            assert nudged == 0
        elif mechanism == "reconciler alone":
            assert nudged > 0, "the orders recovered without the reconciler"
        FIGURES[f"worker SIGKILL ({mechanism})"] = {
            "in flight at kill": in_flight,
            "confirmed": check.confirmed,
            "lost": check.non_final,
            "re-driven by the reconciler": nudged,
            "replayed from genesis = stored pools": check.replayed,
            "all final after kill (s)": round(recovered_s, 1),
        }
    finally:
        stack.stop()
