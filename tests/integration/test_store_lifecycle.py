"""The store's guarded UPDATE follows the lifecycle table, on a real PostgreSQL: every (status, event) pair."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator

import psycopg
import pytest

from tests.stack import Stores
from workers.domain import (
    FINAL_STATUSES,
    INITIAL_STATUS,
    TRANSITIONS,
    LifecycleEvent,
    OrderError,
    OrderStatus,
    OrderType,
)
from workers.migrate import migrate
from workers.models import NewOrder
from workers.store import _OVERDUE_OPEN, _UNFINISHED, OrderStore


@pytest.fixture(scope="module")
def database_url(stores: Stores) -> str:
    url = stores.new_database()
    migrate(url)
    return url


@pytest.fixture(scope="module")
async def store(database_url: str) -> AsyncIterator[OrderStore]:
    s = await OrderStore.open(database_url, min_size=1, max_size=4)
    yield s
    await s.close()


async def _order_in(store: OrderStore, database_url: str, status: OrderStatus) -> str:
    order, event = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**9, 50))
    assert event is not None and event.status is INITIAL_STATUS and order.status is INITIAL_STATUS
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status.value, order.id))
    return order.id


@pytest.mark.parametrize(("status", "event"), list(itertools.product(OrderStatus, LifecycleEvent)))
async def test_the_store_moves_exactly_as_the_table_says(
    store: OrderStore, database_url: str, status: OrderStatus, event: LifecycleEvent
) -> None:
    order_id = await _order_in(store, database_url, status)
    if event is LifecycleEvent.RETRY:
        stored = await store.start_retry(order_id, 1, OrderError("DEX_UNAVAILABLE", "no answer", retryable=True))
    else:
        stored = await store.transition(order_id, event, attempt=1)
    expected = TRANSITIONS.get((status, event))
    order = await store.get_order(order_id)
    assert order is not None
    if expected is None:
        assert stored is None
        assert (order.status, order.last_seq) == (status, 1)  # nothing written
    else:
        assert stored is not None and (stored.status, stored.seq) == (expected, 2)
        assert (order.status, order.last_seq) == (expected, 2)
        assert order.attempt == (2 if event is LifecycleEvent.RETRY else 1)


async def test_a_stale_attempt_moves_nothing(store: OrderStore, database_url: str) -> None:
    order_id = await _order_in(store, database_url, OrderStatus.ROUTING)
    assert await store.transition(order_id, LifecycleEvent.ROUTE, attempt=2) is None
    assert await store.start_retry(order_id, 2, OrderError("TX_EXPIRED", "late", retryable=True)) is None


def test_the_active_orders_index_excludes_exactly_the_final_statuses(database_url: str) -> None:
    """Migrations are fixed SQL: a final status added to the table needs a migration that re-creates this index."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT pg_get_indexdef('orders_active'::regclass)").fetchone()
    assert row is not None
    assert "<> ALL" in row[0], row[0]
    assert set(re.findall(r"'(\w+)'::text", row[0])) == {s.value for s in FINAL_STATUSES}


@pytest.mark.parametrize("query", ["stale", "in_flight", "overdue_open"])
def test_the_reconcilers_and_in_flight_counts_read_their_partial_index_whatever_the_plan(
    database_url: str, query: str
) -> None:
    """The reconciler's sweeps and the in-flight counts name their orders as their partial index does (constants,
    not parameters), so even a generic plan (what a prepared statement may settle on) can read that index instead of
    every order ever placed.

    Which of several usable indexes the planner picks depends on the table's statistics (on a small table, the
    owner/status index sometimes wins), so the plan is asked of a session-local copy of `orders` that holds only the
    partial index: it is read if, and only if, the query's WHERE implies the index's predicate."""
    sql = {
        "stale": f"SELECT id FROM orders WHERE {_UNFINISHED} AND status <> 'open' ORDER BY updated_at LIMIT 500",
        "in_flight": f"SELECT status, count(*) FROM orders WHERE {_UNFINISHED} GROUP BY status",
        "overdue_open": _OVERDUE_OPEN.replace("%s", "500"),
    }[query]
    index = "orders_open_expiry" if query == "overdue_open" else "orders_active"
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index,)).fetchone()
        assert row is not None
        indexdef = row[0].replace(f"INDEX {index} ON public.orders", "INDEX scratch_partial ON pg_temp.orders")
        assert "scratch_partial ON pg_temp.orders" in indexdef, indexdef
        # pg_temp comes first in every search path, so the query's `orders` below is this copy.
        conn.execute("CREATE TEMP TABLE orders (LIKE public.orders)")
        conn.execute(indexdef)
        conn.execute("SET enable_seqscan = off")  # what the planner would pick on a big table, on this small one
        conn.execute("SET plan_cache_mode = force_generic_plan")
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {sql}").fetchall())
    assert "scratch_partial" in plan, plan
