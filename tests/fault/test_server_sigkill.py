"""Fault 2: the gRPC server is SIGKILLed while 100 watchers stream; restarted, every watcher resumes with
from_seq and sees each event exactly once."""

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
    place_orders,
    start_fault_stack,
    watch_many,
)
from tests.stack import Stores

WATCHERS = 100


async def test_sigkill_server_while_100_watchers_stream(fault_stores: Stores) -> None:
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, WATCHERS)
        seen = EventCounter()
        watching = asyncio.create_task(watch_many(stack.grpc_target, order_ids, within=90, on_event=seen))
        await seen.reached(2 * WATCHERS)  # mid-stream: on average two events each, none final yet

        killed_at = time.monotonic()
        server = stack.processes["serve"]
        server.send_signal(signal.SIGKILL)
        server.wait()
        stack.spawn("serve-after-kill", "serve")  # same GRPC_PORT: clients reconnect by themselves

        watched = await watching
        recovered_s = time.monotonic() - killed_at
        assert_each_event_once(watched)
        resumed = sum(1 for w in watched if w.reconnects)
        assert resumed >= WATCHERS // 2, f"only {resumed} watchers saw the server go away"
        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, WATCHERS)
        FIGURES["gRPC server SIGKILL"] = {
            "watchers": WATCHERS,
            "events before kill": seen.count,
            "watchers that resumed": resumed,
            "events missed": 0,
            "events duplicated": 0,
            "all final after kill (s)": round(recovered_s, 1),
        }
    finally:
        stack.stop()
