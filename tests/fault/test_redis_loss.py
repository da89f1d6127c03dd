"""Fault 3: Redis loses all its data mid-run (killed and restarted empty); every accepted order still completes:
the reconciler re-drives the orders whose broker messages vanished."""

from __future__ import annotations

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


async def test_redis_restarted_empty_mid_run(fault_stores: Stores) -> None:
    assert fault_stores.redis_server is not None
    stack = start_fault_stack(fault_stores)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        in_flight = non_final(stack.database_url)

        lost_at = time.monotonic()
        fault_stores.redis_server.restart_empty()

        watched = await watch_many(stack.grpc_target, order_ids, within=90)
        recovered_s = time.monotonic() - lost_at
        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        assert_each_event_once(watched)
        FIGURES["Redis data lost"] = {
            "orders": ORDERS,
            "in flight at loss": in_flight,
            "confirmed": check.confirmed,
            "lost": check.non_final,
            "settled twice": check.double_settled,
            "all final after loss (s)": round(recovered_s, 1),
        }
    finally:
        stack.stop()
