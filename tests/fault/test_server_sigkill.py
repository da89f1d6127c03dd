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
    delivery,
    final_after,
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

        server = stack.processes["serve"]
        server.send_signal(signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        delivered_before_kill = seen.count  # no callback runs between the kill and this line
        server.wait()
        stack.spawn("serve-after-kill", "serve")  # same GRPC_PORT: clients reconnect by themselves

        watched = await watching
        recovered_s = time.monotonic() - killed_at
        got = delivery(watched, stack.database_url)
        # A watcher whose final event was stored after the kill can only have had it from the new server.
        streaming = final_after(watched, killed_wall)
        assert len(streaming) >= WATCHERS // 2, f"only {len(streaming)} streams were open at the kill"
        not_resumed = [w.order_id for w in streaming if not w.reconnects]
        assert not not_resumed, f"streams open at the kill that never resumed: {not_resumed}"
        assert got.missed == 0 and got.duplicated == 0, got
        assert_each_event_once(watched)
        check = check_ledger(stack)
        assert_nothing_lost(check, WATCHERS)
        FIGURES["gRPC server SIGKILL"] = {
            "watchers": WATCHERS,
            "events delivered before kill": delivered_before_kill,
            "streams open at kill": len(streaming),
            "watchers that resumed": sum(1 for w in watched if w.reconnects),
            "events delivered in all": got.events,
            "events missed": got.missed,
            "events duplicated": got.duplicated,
            "replayed from genesis = stored pools": check.replayed,
            "all final after kill (s)": round(recovered_s, 1),
        }
    finally:
        stack.stop()
