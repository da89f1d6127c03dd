"""Fault 5: SIGTERM under load. A worker drains (finishes or requeues what it holds) and exits; the server stops
accepting, ends its streams with UNAVAILABLE (clients resume elsewhere) and exits; nothing is left stuck."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.fault.tools import (
    FIGURES,
    EventCounter,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    non_final,
    place_orders,
    start_fault_stack,
    watch_many,
)
from tests.stack import Stores

ORDERS = 150


async def test_sigterm_worker_and_server_under_load(fault_stores: Stores) -> None:
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        seen = EventCounter()
        watching = asyncio.create_task(watch_many(stack.grpc_target, order_ids, within=90, on_event=seen))
        await seen.reached(2 * ORDERS)
        in_flight = non_final(stack.database_url)

        worker = stack.processes["worker"]
        t0 = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker_code = await asyncio.to_thread(worker.wait, 30)
        worker_exit_s = time.monotonic() - t0
        assert worker_code == 0

        server = stack.processes["serve"]
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server_code = await asyncio.to_thread(server.wait, 30)
        server_exit_s = time.monotonic() - t0
        assert server_code == 0

        stack.spawn("worker-after-term", "worker")
        stack.spawn("serve-after-term", "serve")
        watched = await watching
        assert_each_event_once(watched)
        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        FIGURES["SIGTERM worker, then server"] = {
            "orders in flight": in_flight,
            "worker exit after SIGTERM (s)": round(worker_exit_s, 2),
            "server exit after SIGTERM (s)": round(server_exit_s, 2),
            "watchers that resumed": sum(1 for w in watched if w.reconnects),
            "lost": check.non_final,
            "settled twice": check.double_settled,
        }
    finally:
        stack.stop()
