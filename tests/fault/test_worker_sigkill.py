"""Fault 1: a worker is SIGKILLed with 200 orders in flight; a new worker finishes every one, exactly once."""

from __future__ import annotations

import signal
import time

from tests.fault.tools import (
    FIGURES,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    non_final,
    place_orders,
    start_fault_stack,
    watch_many,
)
from tests.stack import Stores

ORDERS = 200


async def test_sigkill_worker_with_200_orders_in_flight(fault_stores: Stores) -> None:
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        in_flight = non_final(stack.database_url)
        assert in_flight >= ORDERS // 2, "the worker finished too fast for this test to mean anything"

        killed_at = time.monotonic()
        worker = stack.processes["worker"]
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        stack.spawn("worker-after-kill", "worker")

        watched = await watch_many(stack.grpc_target, order_ids, within=120)
        recovered_s = time.monotonic() - killed_at

        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        assert_each_event_once(watched)
        FIGURES["worker SIGKILL"] = {
            "orders": ORDERS,
            "in flight at kill": in_flight,
            "confirmed": check.confirmed,
            "lost": check.non_final,
            "settled twice": check.double_settled,
            "all final after kill (s)": round(recovered_s, 1),
        }
    finally:
        stack.stop()
