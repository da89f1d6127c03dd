"""Store calls that meet share one transaction (`workers/group_commit.py`), against a real PostgreSQL.

Landings (`OrderStore.settle`): each swap lands on the pools as the one before it left them, each order has its own
story, and one order's failure is never its batch-mates'. Submissions (`OrderStore.route_and_submit`): each order
gets its own events, in order, and a second delivery of one of them writes nothing. New orders
(`OrderStore.create_order`): an idempotency key used twice in one batch is one order, and a row the database refuses
fails only its own call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.stack import Stores
from workers.chain import Submission
from workers.domain import ErrorCode, LifecycleEvent, OrderStatus, OrderType, PermanentFailure
from workers.market import SOL, USDC, Pool, genesis_pools
from workers.migrate import migrate
from workers.models import EventDetails, NewOrder, Order, OrderEvent
from workers.store import IdempotencyConflict, OrderStore, Settlement

SEED = 7


@pytest.fixture(scope="module")
async def market(stores: Stores) -> AsyncIterator[tuple[OrderStore, str, Pool]]:
    url = stores.new_database()
    migrate(url)
    store = await OrderStore.open(url)
    await store.seed_pools(genesis_pools(SEED))
    pools = await store.load_pools()
    pool = next(p for p in pools.values() if p.dex == "raydium" and p.has(SOL) and p.has(USDC))
    try:
        yield store, url, pool
    finally:
        await store.close()


async def _submitted(store: OrderStore) -> Order:
    order, _ = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**8, 50))
    for event in (LifecycleEvent.START, LifecycleEvent.ROUTE, LifecycleEvent.SUBMIT):
        assert await store.transition(order.id, event, attempt=1) is not None
    found = await store.get_order(order.id)
    assert found is not None and found.status is OrderStatus.SUBMITTED
    return found


def _sell(pool_id: str, lamports: int, seen: list[Pool]) -> Callable[[dict[str, Pool]], Settlement]:
    def decide(pools: dict[str, Pool]) -> Settlement:
        seen.append(pools[pool_id])
        done = pools[pool_id].swap(SOL, lamports)
        return Settlement(
            amount_out=done.amount_out,
            executed_price="1",
            amount_out_text=str(done.amount_out),
            legs=[{"amount_out": str(done.amount_out)}],
            pools_after={pool_id: done.pool_after},
        )

    return decide


def _refuse(pools: dict[str, Pool]) -> Settlement:
    raise PermanentFailure(ErrorCode.SLIPPAGE_EXCEEDED, "refused in the test")


def _state(url: str, pool_id: str) -> tuple[dict[str, Any], int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT state, version FROM pools WHERE id = %s", (pool_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


async def test_landings_that_meet_share_one_transaction_and_land_in_turn(
    market: tuple[OrderStore, str, Pool],
) -> None:
    store, url, pool = market
    orders = [await _submitted(store) for _ in range(5)]
    state_before, version_before = _state(url, pool.id)
    seen: list[Pool] = []
    amounts = [10**8 * (i + 1) for i in range(5)]
    landed = await asyncio.gather(
        *(
            store.settle(o, f"sig-turn-{o.id}", [pool.id], _sell(pool.id, a, seen))
            for o, a in zip(orders, amounts, strict=True)
        )
    )
    assert all(isinstance(e, OrderEvent) and e.status is OrderStatus.CONFIRMED for e in landed)

    # Serially, as if each came after the one before: the same outputs, the same pool at the end.
    expected = seen[0]
    assert expected.to_json() == state_before
    for event, pool_then, amount in zip(landed, seen, amounts, strict=True):
        assert pool_then.to_json() == expected.to_json()
        done = expected.swap(SOL, amount)
        assert event is not None and event.details.amount_out == str(done.amount_out)
        expected = done.pool_after
    state_after, version_after = _state(url, pool.id)
    assert state_after == expected.to_json()
    assert version_after == version_before + 1  # one write of the pool for the five swaps: one transaction

    with psycopg.connect(url) as conn:
        stamps = conn.execute(
            "SELECT order_id::text FROM settlements WHERE order_id = ANY(%s::uuid[]) ORDER BY settled_at",
            ([o.id for o in orders],),
        ).fetchall()
    assert [r[0] for r in stamps] == [o.id for o in orders]  # the ledger's order is the order they landed in


async def test_a_refused_landing_and_a_second_delivery_are_their_own_story(
    market: tuple[OrderStore, str, Pool],
) -> None:
    store, _, pool = market
    kept, refused = await _submitted(store), await _submitted(store)
    seen: list[Pool] = []
    results = await asyncio.gather(
        store.settle(kept, f"sig-kept-{kept.id}", [pool.id], _sell(pool.id, 10**8, seen)),
        store.settle(refused, f"sig-refused-{refused.id}", [pool.id], _refuse),
        store.settle(kept, f"sig-kept-{kept.id}", [pool.id], _sell(pool.id, 10**8, seen)),  # delivered twice
        return_exceptions=True,
    )
    confirmed, error, again = results
    assert isinstance(confirmed, OrderEvent) and confirmed.status is OrderStatus.CONFIRMED
    assert isinstance(error, PermanentFailure) and error.code is ErrorCode.SLIPPAGE_EXCEEDED
    assert again is None  # landed once
    assert len(seen) == 1
    still = await store.get_order(refused.id)
    assert still is not None and still.status is OrderStatus.SUBMITTED  # the refusal changed nothing


async def test_a_landing_whose_write_fails_fails_alone(
    market: tuple[OrderStore, str, Pool], caplog: pytest.LogCaptureFixture
) -> None:
    store, _, pool = market
    first, clash, other = await _submitted(store), await _submitted(store), await _submitted(store)
    seen: list[Pool] = []
    caplog.set_level(logging.WARNING, logger="workers.group_commit")
    # `clash` reuses `first`'s signature: the ledger's UNIQUE signature fails the batch's INSERT.
    results = await asyncio.gather(
        store.settle(first, f"sig-same-{first.id}", [pool.id], _sell(pool.id, 10**8, seen)),
        store.settle(clash, f"sig-same-{first.id}", [pool.id], _sell(pool.id, 10**8, seen)),
        store.settle(other, f"sig-other-{other.id}", [pool.id], _sell(pool.id, 10**8, seen)),
        return_exceptions=True,
    )
    assert isinstance(results[0], OrderEvent) and isinstance(results[2], OrderEvent)
    assert isinstance(results[1], psycopg.errors.UniqueViolation)
    assert "a batch of 3 failed" in caplog.text  # they met, and the batch's failure was split up
    for order, status in ((first, "confirmed"), (clash, "submitted"), (other, "confirmed")):
        found = await store.get_order(order.id)
        assert found is not None and found.status.value == status


async def test_submissions_that_meet_each_get_their_own_events(market: tuple[OrderStore, str, Pool]) -> None:
    store, url, _ = market
    new = NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**8, 50)
    orders = [(await store.create_order(new))[0] for _ in range(3)]
    now = datetime.now(UTC)

    def submit(order: Order) -> Any:
        sub = Submission(f"sig-submit-{order.id}", now, now + timedelta(seconds=1), now + timedelta(seconds=60))
        return store.route_and_submit(
            order,
            start=True,
            route_details=EventDetails(dex="raydium"),
            route={"legs": [], "order": order.id},
            submission=sub,
            submit_details=EventDetails(dex="raydium", tx_signature=sub.signature),
        )

    results = await asyncio.gather(*(submit(o) for o in [*orders, orders[1]]))  # the second one delivered twice
    assert results[3] is None
    for order, done in zip(orders, results[:3], strict=True):
        assert done is not None
        events, sub = done
        assert {e.order_id for e in events} == {order.id}
        assert [(e.seq, e.status) for e in events] == [
            (2, OrderStatus.ROUTING),
            (3, OrderStatus.BUILDING),
            (4, OrderStatus.SUBMITTED),
        ]
        assert sub.signature == f"sig-submit-{order.id}"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.id::text, o.status, o.route->>'order', count(t.signature) FROM orders o "
            "LEFT JOIN chain_transactions t ON t.order_id = o.id WHERE o.id = ANY(%s::uuid[]) GROUP BY o.id",
            ([o.id for o in orders],),
        ).fetchall()
    assert sorted(rows) == sorted((o.id, "submitted", o.id, 1) for o in orders)


async def test_new_orders_that_meet_share_a_transaction_and_keep_their_keys(
    market: tuple[OrderStore, str, Pool],
) -> None:
    store, url, _ = market
    keyed = NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**8, 50, idempotency_key="batch-key")
    other_params = NewOrder("default", OrderType.MARKET, "SOL", "USDC", 2 * 10**8, 50, idempotency_key="batch-key")
    plain = NewOrder("default", OrderType.MARKET, "USDC", "SOL", 10**6, 50)
    batches = store._creations.batches
    results = await asyncio.gather(
        store.create_order(keyed),
        store.create_order(plain),
        store.create_order(keyed),
        store.create_order(other_params),
        return_exceptions=True,
    )
    assert store._creations.batches == batches + 1  # the four met
    (first, first_event), (new, new_event), (again, again_event) = results[0], results[1], results[2]  # type: ignore[misc]
    assert first_event is not None and first_event.seq == 1 and first_event.order_id == first.id
    assert again.id == first.id and again_event is None  # the same key and parameters: the same order
    assert new_event is not None and new.id != first.id and new.token_in == "USDC"
    assert isinstance(results[3], IdempotencyConflict) and first.id in str(results[3])
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT o.id::text, count(e.seq) FROM orders o JOIN order_events e ON e.order_id = o.id "
            "WHERE o.idempotency_key = 'batch-key' GROUP BY o.id"
        ).fetchall()
    assert rows == [(first.id, 1)]


async def test_a_new_order_the_database_refuses_fails_alone(
    market: tuple[OrderStore, str, Pool], caplog: pytest.LogCaptureFixture
) -> None:
    store, _, _ = market
    caplog.set_level(logging.WARNING, logger="workers.group_commit")
    fine = NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**8, 50)
    too_big = NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**30, 50)  # past `bigint`: the INSERT fails
    results = await asyncio.gather(
        store.create_order(fine), store.create_order(too_big), store.create_order(fine), return_exceptions=True
    )
    assert isinstance(results[1], psycopg.errors.NumericValueOutOfRange)
    assert "a batch of 3 failed" in caplog.text
    for done in (results[0], results[2]):
        assert isinstance(done, tuple)
        order, event = done
        assert event is not None and await store.get_order(order.id) is not None
