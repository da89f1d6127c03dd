"""The order store: every SQL statement of the engine lives here.

A state change is one statement or one transaction: the guarded UPDATE moves the order only from a status the
lifecycle table lets the event leave (`workers.domain.moves`, passed as a JSON map from status to status) and the
INSERT of its event rides in the same statement, so a redelivered message that finds the order already past that
state changes nothing. Every method that writes an event hands it to the store's `EventSink` once committed
(`workers/events.py`: publish, log, observers), so callers never publish themselves.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from workers.chain import Submission
from workers.domain import (
    FINAL_STATUSES,
    INITIAL_STATUS,
    NON_FINAL_STATUSES,
    LifecycleEvent,
    OrderError,
    OrderStatus,
    OrderType,
    moves,
)
from workers.events import EventSink
from workers.group_commit import GroupCommit
from workers.market.codec import pool_from_json
from workers.market.pool import Pool
from workers.market.tokens import Token
from workers.models import EventDetails, NewOrder, Order, OrderEvent

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """PostgreSQL cannot be reached; nothing was written."""


class OrderNotFound(LookupError):
    """No such order, or not the caller's: the same answer, so one account learns nothing of another's orders."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} not found")


class NotCancellable(Exception):
    """The order has started executing or is final: a cancel cannot undo it."""

    def __init__(self, order_id: str, status: OrderStatus) -> None:
        super().__init__(
            f"order {order_id} is {status.value}: only a pending or open order can be cancelled"
            + ("" if status.is_final else " (this one has started executing)")
        )
        self.status = status


class IdempotencyConflict(Exception):
    """The idempotency key was used before with other parameters."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"idempotency key already used for order {order_id} with different parameters")
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling a swap decided, computed from the pools as locked in the settling transaction."""

    amount_out: int
    executed_price: str
    amount_out_text: str
    legs: list[dict[str, Any]]
    pools_after: dict[str, Pool]


@dataclass(frozen=True, slots=True)
class _Landing:
    """One swap waiting to land (`OrderStore.settle`)."""

    order: Order
    signature: str
    pool_ids: tuple[str, ...]
    decide: Callable[[dict[str, Pool]], Settlement]
    on_written: Callable[[dict[str, tuple[Pool, int]]], None] | None


@dataclass(frozen=True, slots=True)
class _Submitting:
    """One order's `route_and_submit`, as its statement's parameters and its events' details."""

    params: dict[str, Any]
    details: tuple[EventDetails, ...]
    submission: Submission


# The events `route_and_submit` wrote, and the transaction's entry in the mempool.
_Submitted = tuple[list[OrderEvent], Submission]
_Created = tuple[Order, OrderEvent | None]

# What a landing came to: its `confirmed` event, None (not waiting for this landing), or why it was refused.
_Outcome = OrderEvent | BaseException | None


_NO_DETAILS = EventDetails()

# Each event's moves as the guarded UPDATE takes them: {"from status": "to status", ...}.
_MOVES = {event: Jsonb({s.value: t.value for s, t in moves(event).items()}) for event in LifecycleEvent}

# The advisory lock that one market drift at a time holds (any constant not used elsewhere).
DRIFT_LOCK_KEY = 0x0D21F7

_ORDER_COLUMNS = (
    "id, owner_id, order_type, token_in, token_out, amount_in, slippage_bps, status, attempt, last_seq, "
    "created_at, updated_at, idempotency_key, dex, route, tx_signature, executed_price, amount_out, error, "
    "max_price_impact_bps, limit_price, expires_at"
)

_ORDER_AT_WORK = (
    "SELECT "
    + ", ".join(f"o.{column.strip()}" for column in _ORDER_COLUMNS.split(","))
    + ", t.signature, t.submitted_at, t.lands_at, t.expires_at FROM orders o "
    "LEFT JOIN chain_transactions t ON t.signature = o.tx_signature WHERE o.id = %s"
)

# The event row, and the order's type and creation time for the sink's observers (metrics: pending -> terminal).
_EVENT_INSERT = """, ins AS (
    INSERT INTO order_events (order_id, seq, status, attempt, payload)
    SELECT id, last_seq, status, attempt, %(payload)s FROM moved
    RETURNING order_id, seq, status, attempt, created_at
)
SELECT ins.order_id, ins.seq, ins.status, ins.attempt, ins.created_at, moved.order_type, moved.created_at
FROM ins, moved
"""

_TRANSITION = (
    """
WITH moved AS (
    UPDATE orders SET
        status = %(moves)s::jsonb ->> status, last_seq = last_seq + 1, updated_at = clock_timestamp(),
        dex = COALESCE(%(dex)s, dex), route = COALESCE(%(route)s, route),
        tx_signature = COALESCE(%(tx_signature)s, tx_signature),
        executed_price = COALESCE(%(executed_price)s, executed_price),
        amount_out = COALESCE(%(amount_out)s, amount_out), error = COALESCE(%(error)s, error)
    WHERE id = %(id)s AND %(moves)s::jsonb ? status AND (%(attempt)s::int IS NULL OR attempt = %(attempt)s)
      AND (%(owner)s::text IS NULL OR owner_id = %(owner)s)
      AND (NOT %(live)s OR expires_at IS NULL OR expires_at > clock_timestamp())
      AND (NOT %(due)s OR expires_at IS NULL OR expires_at <= clock_timestamp())
    RETURNING id, last_seq, status, attempt, order_type, created_at
)"""
    + _EVENT_INSERT
)

# A new attempt: RETRY starts it at routing, REOPEN sends the order back to wait for its price.
_NEXT_ATTEMPT = (
    """
WITH moved AS (
    UPDATE orders SET
        status = %(moves)s::jsonb ->> status, attempt = attempt + 1, last_seq = last_seq + 1,
        updated_at = clock_timestamp(), dex = NULL, route = NULL, tx_signature = NULL, error = %(error)s
    WHERE id = %(id)s AND attempt = %(attempt)s AND %(moves)s::jsonb ? status
    RETURNING id, last_seq, status, attempt, order_type, created_at
)"""
    + _EVENT_INSERT
)


# The order and its first event in one statement: one round trip, and atomic without BEGIN/COMMIT.
_CREATE_ORDER = f"""
WITH o AS (
    INSERT INTO orders (id, owner_id, idempotency_key, fingerprint, order_type, token_in, token_out, amount_in,
                        slippage_bps, status, max_price_impact_bps, limit_price, expires_at, trigger_in, trigger_out,
                        trigger_price)
    VALUES (%(id)s, %(owner_id)s, %(key)s, %(fingerprint)s, %(order_type)s, %(token_in)s, %(token_out)s,
            %(amount_in)s, %(slippage_bps)s, %(status)s, %(max_price_impact_bps)s, %(limit_price)s, %(expires_at)s,
            %(trigger_in)s, %(trigger_out)s, %(trigger_price)s)
    ON CONFLICT (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {_ORDER_COLUMNS}
), e AS (
    INSERT INTO order_events (order_id, seq, status, attempt)
    SELECT id, 1, status, 1 FROM o
    RETURNING order_id, seq, status, attempt, created_at
)
SELECT o.*, e.* FROM o, e
"""

_KEYED_ORDER = f"SELECT {_ORDER_COLUMNS}, fingerprint FROM orders WHERE owner_id = %s AND idempotency_key = %s"


def _creation_params(new: NewOrder) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "owner_id": new.owner_id,
        "key": new.idempotency_key,
        "fingerprint": new.fingerprint(),
        "order_type": new.order_type.value,
        "token_in": new.token_in,
        "token_out": new.token_out,
        "amount_in": new.amount_in,
        "slippage_bps": new.slippage_bps,
        "status": INITIAL_STATUS.value,
        "max_price_impact_bps": new.max_price_impact_bps,
        "limit_price": new.limit_price,
        "expires_at": new.expires_at,
        "trigger_in": new.trigger_in,
        "trigger_out": new.trigger_out,
        "trigger_price": (new.limit_price or 0) if new.trigger_out is not None else None,
    }


# START, ROUTE, the mempool entry and SUBMIT in one statement (OrderStore.route_and_submit): the order moves from
# `source` to `final` under the same guards as a transition, and each step gets its event row, in order.
# Arrays go in binary (`%b`): psycopg's text array dumper escapes every element through a regex, and the jsonb
# payloads are full of quotes (dumping this statement's parameters took 76 us in text, 24 in binary).
_ROUTE_AND_SUBMIT = """
WITH moved AS (
    UPDATE orders SET
        status = %(final)s, last_seq = last_seq + %(n)s, updated_at = clock_timestamp(),
        dex = %(dex)s, route = %(route)s, tx_signature = %(sig)s
    WHERE id = %(id)s AND status = %(source)s AND attempt = %(attempt)s
    RETURNING id, last_seq, attempt, order_type, created_at
), sub AS (
    INSERT INTO chain_transactions (signature, order_id, attempt, submitted_at, lands_at, expires_at)
    SELECT %(sig)s, id, attempt, %(submitted_at)s, %(lands_at)s, %(expires_at)s FROM moved
    ON CONFLICT DO NOTHING
    RETURNING signature
), ins AS (
    INSERT INTO order_events (order_id, seq, status, attempt, payload)
    SELECT moved.id, moved.last_seq - %(n)s + e.i, e.status, moved.attempt, e.payload
    FROM moved, unnest(%(statuses)b::text[], %(payloads)b::jsonb[]) WITH ORDINALITY AS e(status, payload, i)
    RETURNING order_id, seq, status, attempt, created_at
)
SELECT ins.order_id, ins.seq, ins.status, ins.attempt, ins.created_at, moved.order_type, moved.created_at,
       EXISTS (SELECT 1 FROM sub)
FROM ins, moved
ORDER BY ins.seq
"""

# Orders not final yet, in the words of the partial index `orders_active` (migration 0004): constants, so that every
# plan can use that index. As `status = ANY(%s)` a generic plan scanned all of `orders` (49 ms at 220,000 orders)
# for the reconciler every few seconds and for every metrics scrape.
_UNFINISHED = "status NOT IN (" + ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATUSES)) + ")"

# Open orders past their expiry, through the partial index `orders_open_expiry`.
_OVERDUE_OPEN = (
    "SELECT id FROM orders WHERE status = 'open' AND expires_at IS NOT NULL "
    "AND expires_at <= clock_timestamp() ORDER BY expires_at LIMIT %s"
)

# Whether any order rests: asked after a pool move commits (`OrderStore._any_open`).
_ANY_OPEN = "SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'open')"

_INSERT_SUBMISSION = (
    "INSERT INTO chain_transactions (signature, order_id, attempt, submitted_at, lands_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING signature"
)


def _submission_params(order_id: str, attempt: int, sub: Submission) -> tuple[Any, ...]:
    return (sub.signature, _uuid(order_id), attempt, sub.submitted_at, sub.lands_at, sub.expires_at)


def _order(row: Sequence[Any]) -> Order:
    return Order(
        id=str(row[0]),
        owner_id=row[1],
        order_type=OrderType(row[2]),
        token_in=row[3],
        token_out=row[4],
        amount_in=row[5],
        slippage_bps=row[6],
        status=OrderStatus(row[7]),
        attempt=row[8],
        last_seq=row[9],
        created_at=row[10],
        updated_at=row[11],
        idempotency_key=row[12],
        dex=row[13],
        route=row[14],
        tx_signature=row[15],
        executed_price=row[16],
        amount_out=row[17],
        error=OrderError.from_json(row[18]) if row[18] else None,
        max_price_impact_bps=row[19],
        limit_price=row[20],
        expires_at=row[21],
    )


def _event(row: Sequence[Any], details: EventDetails) -> OrderEvent:
    return OrderEvent(
        order_id=str(row[0]),
        seq=row[1],
        status=OrderStatus(row[2]),
        attempt=row[3],
        time=row[4],
        details=details,
    )


def _written_event(row: Sequence[Any], details: EventDetails) -> OrderEvent:
    """An event just written by `_EVENT_INSERT`, with its order's type and creation time."""
    return replace(_event(row, details), order_type=OrderType(row[5]), placed_at=row[6])


def _transition_params(
    order_id: str,
    event: LifecycleEvent,
    details: EventDetails,
    attempt: int | None,
    route: dict[str, Any] | None,
    amount_out: int | None = None,
    owner_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": _uuid(order_id),
        "moves": _MOVES[event],
        "attempt": attempt,
        "owner": owner_id,
        "live": event is LifecycleEvent.TRIGGER,
        "due": event is LifecycleEvent.EXPIRE,
        "dex": details.dex,
        "route": Jsonb(route) if route is not None else None,
        "tx_signature": details.tx_signature,
        "executed_price": details.executed_price,
        "amount_out": amount_out,
        "error": Jsonb(details.error.to_json()) if details.error else None,
        "payload": Jsonb(details.to_json()),
    }


def _uuid(order_id: str) -> uuid.UUID:
    return uuid.UUID(order_id)


class OrderStore:
    """One connection pool per process, opened at start-up and closed at shutdown.

    `sink` hears of every event the store commits; without one, events are only logged.
    """

    def __init__(self, pool: AsyncConnectionPool, sink: EventSink | None = None) -> None:
        self._pool = pool
        self._sink = sink or EventSink()
        self._landings = GroupCommit(self._land, alone=_not_unavailable)
        self._submissions = GroupCommit(self._route_and_submit, alone=_not_unavailable)
        self._creations = GroupCommit(self._create_orders, alone=_not_unavailable)

    @classmethod
    async def open(
        cls, database_url: str, *, min_size: int = 2, max_size: int = 10, sink: EventSink | None = None
    ) -> OrderStore:
        pool = AsyncConnectionPool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            # A request waits at most this long for a connection: an outage answers UNAVAILABLE quickly.
            timeout=2.0,
            open=False,
        )
        await pool.open(wait=False)
        return cls(pool, sink)

    async def close(self) -> None:
        await self._pool.close()

    @property
    def pool(self) -> AsyncConnectionPool:
        """Shared with the process's other stores (accounts), so a process keeps one pool."""
        return self._pool

    def _conn(self) -> Any:
        return self._pool.connection()

    async def _committed(self, event: OrderEvent | None) -> OrderEvent | None:
        """Call with what a committed write returned: the sink hears of the event, if one was written."""
        if event is not None:
            await self._sink.committed(event)
        return event

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.execute("SELECT 1")

    # -- orders -----------------------------------------------------------------------------------------------

    async def create_order(self, new: NewOrder) -> tuple[Order, OrderEvent | None]:
        """Stores the order and its `pending` event in one transaction, then hands the event to the sink.

        Returns the event only when the order is new; a repeated idempotency key with the same parameters
        returns the stored order and no event, with other parameters raises IdempotencyConflict.
        """
        return await self._creations.submit(new)

    async def _create_orders(self, batch: Sequence[NewOrder]) -> list[_Created | BaseException]:
        """Many orders' inserts in one transaction (one statement alone is one already)."""
        # Keyed orders in key order: batches in two processes wait on the keys they share in the same order.
        turns = sorted(range(len(batch)), key=lambda i: (batch[i].owner_id, batch[i].idempotency_key or ""))
        rows: list[Any] = [None] * len(batch)
        existing: dict[int, Any] = {}
        one = len(batch) == 1  # one statement is a transaction of its own
        async with self._conn() as conn, conn.pipeline(), contextlib.nullcontext() if one else conn.transaction():
            cur = conn.cursor()
            await cur.executemany(_CREATE_ORDER, [_creation_params(batch[i]) for i in turns], returning=True)
            for i in turns:
                rows[i] = await cur.fetchone()
                cur.nextset()
            for i in turns:
                if rows[i] is None:  # the key was used before (perhaps earlier in this very batch)
                    found = await conn.execute(_KEYED_ORDER, (batch[i].owner_id, batch[i].idempotency_key))
                    existing[i] = await found.fetchone()
        return [self._created(new, rows[i], existing.get(i)) for i, new in enumerate(batch)]

    def _created(self, new: NewOrder, row: Any, existing: Any) -> _Created | BaseException:
        if row is not None:
            n = len(_ORDER_COLUMNS.split(","))
            order = _order(row[:n])
            pending = replace(_event(row[n:], EventDetails()), order_type=order.order_type, placed_at=order.created_at)
            self._sink.created(pending)
            return order, pending
        if existing is None:
            return StoreUnavailable("the order with this idempotency key vanished while being read; retry")
        if existing[-1] != new.fingerprint():
            return IdempotencyConflict(str(existing[0]))
        return _order(existing), None

    async def forget_unstarted(self, order_id: str) -> bool:
        """Undoes create_order when the order could not be queued, so a failed request leaves nothing behind."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "DELETE FROM orders WHERE id = %s AND status = %s AND last_seq = 1",
                (_uuid(order_id), INITIAL_STATUS.value),
            )
            return bool(cur.rowcount == 1)

    async def get_order(self, order_id: str, owner_id: str | None = None) -> Order | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = %s AND (%s::text IS NULL OR owner_id = %s)",
                (_uuid(order_id), owner_id, owner_id),
            )
            row = await cur.fetchone()
            return _order(row) if row else None

    async def order_at_work(self, order_id: str) -> tuple[Order, Submission | None] | None:
        """The order as a worker picks it up, with its transaction's entry in the mempool when it has one: what a
        landing check needs in one read, not two."""
        async with self._conn() as conn:
            cur = await conn.execute(_ORDER_AT_WORK, (_uuid(order_id),))
            row = await cur.fetchone()
        if row is None:
            return None
        n = len(_ORDER_COLUMNS.split(","))
        sig, submitted_at, lands_at, expires_at = row[n:]
        return _order(row[:n]), Submission(sig, submitted_at, lands_at, expires_at) if sig is not None else None

    async def list_orders(
        self,
        owner_id: str,
        *,
        status: OrderStatus | None,
        limit: int,
        before: tuple[datetime, str] | None,
    ) -> list[Order]:
        """Newest first; `before` is the (created_at, id) of the last order of the previous page."""
        clauses = ["owner_id = %s"]
        params: list[Any] = [owner_id]
        if status is not None:
            clauses.append("status = %s")
            params.append(status.value)
        if before is not None:
            clauses.append("(created_at, id) < (%s, %s)")
            params += [before[0], _uuid(before[1])]
        params.append(limit)
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE {' AND '.join(clauses)} "
                "ORDER BY created_at DESC, id DESC LIMIT %s",
                params,
            )
            return [_order(r) for r in await cur.fetchall()]

    async def events_after(self, order_id: str, from_seq: int, owner_id: str | None = None) -> list[OrderEvent]:
        async with self._conn() as conn:
            # The owner is checked on the order's own row (found by its key): as EXISTS, a plan made before the
            # tables had statistics hashed every order of the owner per read, 1 ms at 4,000 orders and growing.
            cur = await conn.execute(
                "SELECT e.order_id, e.seq, e.status, e.attempt, e.created_at, e.payload "
                "FROM orders o JOIN order_events e ON e.order_id = o.id "
                "WHERE o.id = %(id)s AND e.order_id = %(id)s AND e.seq > %(after)s "
                "AND (%(owner)s::text IS NULL OR o.owner_id = %(owner)s) ORDER BY e.seq",
                {"id": _uuid(order_id), "after": from_seq, "owner": owner_id},
            )
            return [_event(r, EventDetails.from_json(r[5])) for r in await cur.fetchall()]

    # -- transitions ------------------------------------------------------------------------------------------

    async def transition(
        self,
        order_id: str,
        event: LifecycleEvent,
        details: EventDetails = _NO_DETAILS,
        *,
        attempt: int | None = None,
        route: dict[str, Any] | None = None,
        amount_out: int | None = None,
        owner_id: str | None = None,
    ) -> OrderEvent | None:
        """Applies `event` if the lifecycle allows it from where the order is; None when it does not.

        `attempt`, when given, must be the order's attempt (a stale message of an earlier attempt moves nothing);
        `owner_id`, when given, must own the order. A TRIGGER applies only before the order's expiry and an
        EXPIRE only after it, so a late trigger and an early expiry message both move nothing.
        """
        async with self._conn() as conn:
            stored = await self._transition(conn, order_id, event, details, attempt, route, amount_out, owner_id)
        return await self._committed(stored)

    @staticmethod
    async def _transition(
        conn: Any,
        order_id: str,
        event: LifecycleEvent,
        details: EventDetails,
        attempt: int | None,
        route: dict[str, Any] | None,
        amount_out: int | None,
        owner_id: str | None = None,
    ) -> OrderEvent | None:
        cur = await conn.execute(
            _TRANSITION, _transition_params(order_id, event, details, attempt, route, amount_out, owner_id)
        )
        row = await cur.fetchone()
        return _written_event(row, details) if row else None

    async def route_and_submit(
        self,
        order: Order,
        *,
        start: bool,
        route_details: EventDetails,
        route: dict[str, Any],
        submission: Submission,
        submit_details: EventDetails,
    ) -> _Submitted | None:
        """START (when `start`), ROUTE, the transaction's entry in the mempool and SUBMIT: the steps a worker
        completes in one message once the venues' quote is in, as one statement instead of four transactions.

        Guarded as the first step's `transition` is (from `pending`, or `routing` without START, at the order's
        attempt): None, writing nothing, when it does not apply (a redelivered message, another worker). The
        steps after the first cannot miss once it applied, so the statement moves the order to `submitted` at
        once and writes one event row per step (seq n+1, n+2, ...), each with the payload its own transition
        would have written. Atomic: either all are stored or none is, and the events are handed to the sink only
        after the commit, in order, as the separate transactions did one by one. Orders that come while others
        are in the store share their transaction and their publish (`workers/group_commit.py`).
        """
        steps: list[tuple[LifecycleEvent, EventDetails]] = [
            (LifecycleEvent.ROUTE, route_details),
            (LifecycleEvent.SUBMIT, submit_details),
        ]
        if start:
            steps.insert(0, (LifecycleEvent.START, _NO_DETAILS))
        status = OrderStatus.PENDING if start else OrderStatus.ROUTING
        source, statuses = status, []
        for event, _ in steps:
            status = moves(event)[status]
            statuses.append(status.value)
        params = {
            "id": _uuid(order.id),
            "source": source.value,
            "final": status.value,
            "attempt": order.attempt,
            "n": len(steps),
            "dex": route_details.dex,
            "route": Jsonb(route),
            "sig": submission.signature,
            "submitted_at": submission.submitted_at,
            "lands_at": submission.lands_at,
            "expires_at": submission.expires_at,
            "statuses": statuses,
            "payloads": [Jsonb(details.to_json()) for _, details in steps],
        }
        return await self._submissions.submit(_Submitting(params, tuple(details for _, details in steps), submission))

    async def _route_and_submit(self, batch: Sequence[_Submitting]) -> list[_Submitted | None]:
        """Many orders' `route_and_submit` statements in one transaction (one statement alone is one already)."""
        # In id order: batches in two processes lock the orders they share in the same order.
        turns = sorted(range(len(batch)), key=lambda i: batch[i].params["id"])
        submitted: list[_Submitted | None] = [None] * len(batch)
        one = len(batch) == 1  # one statement is a transaction of its own
        async with self._conn() as conn, conn.pipeline(), contextlib.nullcontext() if one else conn.transaction():
            cur = conn.cursor()
            await cur.executemany(_ROUTE_AND_SUBMIT, [batch[i].params for i in turns], returning=True)
            for i in turns:
                rows = await cur.fetchall()
                cur.nextset()
                if not rows:
                    continue
                sub = batch[i].submission
                if not rows[0][7]:  # a resubmission returns the first one's fate (not expected on this path)
                    found = await self._submission(conn, sub.signature)
                    assert found is not None
                    sub = found
                steps = batch[i].details
                submitted[i] = ([_written_event(r, d) for r, d in zip(rows, steps, strict=True)], sub)
        await self._sink.committed(*(event for done in submitted if done is not None for event in done[0]))
        return submitted

    async def cancel(self, order_id: str, owner_id: str) -> Order:
        """The owner's cancel: the guarded `cancel` move, then the order as it stands. A cancelled order comes back
        unchanged; one that started executing or is final raises NotCancellable; another owner's, OrderNotFound."""
        moved = await self.transition(order_id, LifecycleEvent.CANCEL, owner_id=owner_id)
        order = await self.get_order(order_id, owner_id)
        if order is None:
            raise OrderNotFound(order_id)
        if moved is None and order.status is not OrderStatus.CANCELLED:
            raise NotCancellable(order_id, order.status)
        return order

    async def start_retry(self, order_id: str, failed_attempt: int, error: OrderError) -> OrderEvent | None:
        """Begins attempt `failed_attempt + 1` at `routing`; its event carries the error that caused it."""
        return await self._next_attempt(order_id, failed_attempt, error, LifecycleEvent.RETRY)

    async def reopen(self, order_id: str, attempt: int, error: OrderError) -> OrderEvent | None:
        """Sends a resting order whose attempt missed its limit back to `open`; the next firing is a new attempt
        (its own transaction signature), and the event carries why."""
        return await self._next_attempt(order_id, attempt, error, LifecycleEvent.REOPEN)

    async def _next_attempt(
        self, order_id: str, failed_attempt: int, error: OrderError, event: LifecycleEvent
    ) -> OrderEvent | None:
        details = EventDetails(error=error)
        async with self._conn() as conn:
            cur = await conn.execute(
                _NEXT_ATTEMPT,
                {
                    "id": _uuid(order_id),
                    "attempt": failed_attempt,
                    "moves": _MOVES[event],
                    "error": Jsonb(error.to_json()),
                    "payload": Jsonb(details.to_json()),
                },
            )
            row = await cur.fetchone()
        return await self._committed(_written_event(row, details) if row else None)

    async def fail(self, order_id: str, error: OrderError, *, attempt: int | None = None) -> OrderEvent | None:
        """The order's one terminal failure; `attempt` guards against a stale message of an earlier attempt."""
        return await self.transition(order_id, LifecycleEvent.FAIL, EventDetails(error=error), attempt=attempt)

    async def orders_in_flight(self) -> dict[str, int]:
        """How many orders are in each non-final status now."""
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT status, count(*) FROM orders WHERE {_UNFINISHED} GROUP BY status")
            counts = {str(status): int(n) for status, n in await cur.fetchall()}
        return {s.value: counts.get(s.value, 0) for s in NON_FINAL_STATUSES}

    async def stale_orders(self, idle_seconds: float, limit: int = 500) -> list[str]:
        """Claims non-final orders that stopped moving, so that one reconciler among many re-drives each."""
        async with self._conn() as conn:
            cur = await conn.execute(
                f"""
                UPDATE orders SET nudged_at = clock_timestamp()
                WHERE id IN (
                    SELECT id FROM orders
                    WHERE {_UNFINISHED} AND status <> %(open)s
                      AND updated_at < clock_timestamp() - make_interval(secs => %(idle)s)
                      AND (nudged_at IS NULL OR nudged_at < clock_timestamp() - make_interval(secs => %(idle)s))
                    ORDER BY updated_at LIMIT %(limit)s
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING id
                """,
                {
                    "open": OrderStatus.OPEN.value,
                    "idle": idle_seconds,
                    "limit": limit,
                },
            )
            return [str(r[0]) for r in await cur.fetchall()]

    # -- resting orders ---------------------------------------------------------------------------------------

    async def overdue_open(self, limit: int = 500) -> list[str]:
        """Open orders past their expiry: what a lost expiry message left behind (resting orders are idle by
        design, so `stale_orders` leaves them out)."""
        async with self._conn() as conn:
            # `status = 'open'` as a constant, the partial index's own words (see _UNFINISHED).
            cur = await conn.execute(_OVERDUE_OPEN, (limit,))
            return [str(r[0]) for r in await cur.fetchall()]

    @staticmethod
    async def _any_open(conn: Any) -> bool:
        """Whether any order rests (`open`), asked after a pool move has committed: the "pools moved" message is
        sent only then, so a market with no resting order pays nothing for the trigger engine.

        Why nothing is lost: this statement's snapshot is taken after the move committed. An order whose REST
        (or REOPEN) committed before that snapshot is seen here, and the message goes out; one that commits after
        it looks at the pools itself once committed (`triggers.check_now`, called by `pipeline._rest` and after a
        reopen), and that look comes after the move's commit, so it prices the order on the moved pools. Should
        the question itself fail, the answer is "yes": the message costs less than a missed trigger.
        """
        try:
            cur = await conn.execute(_ANY_OPEN)
            row = await cur.fetchone()
        except psycopg.Error:
            return True
        return bool(row is None or row[0])

    async def open_directions(self) -> list[tuple[str, str]]:
        """The (trigger_in, trigger_out) mints some open order waits on: what the trigger engine prices after a
        move, so its work follows the resting orders (an index-only scan of `orders_open_trigger`)."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT trigger_in, trigger_out FROM orders "
                "WHERE status = 'open' AND trigger_in IS NOT NULL AND trigger_out IS NOT NULL"
            )
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def reachable_candidates(
        self, bounds: Sequence[tuple[str, str, Decimal]], limit: int = 10_000
    ) -> list[Order]:
        """Open orders whose trigger price is at or below their direction's bound (the best price any path of
        the pools offers now): one index range scan per direction (`orders_open_trigger`), one round trip.
        The caller still checks each for its whole amount."""
        if not bounds:
            return []
        async with self._conn() as conn:
            cur = await conn.execute(
                f"""
                SELECT {", ".join("o." + c.strip() for c in _ORDER_COLUMNS.split(","))}
                FROM unnest(%s::text[], %s::text[], %s::numeric[]) AS d(tin, tout, bound)
                CROSS JOIN LATERAL (
                    SELECT * FROM orders
                    WHERE status = 'open' AND trigger_in = d.tin AND trigger_out = d.tout AND trigger_price <= d.bound
                    ORDER BY trigger_price LIMIT %s
                ) o
                """,
                ([b[0] for b in bounds], [b[1] for b in bounds], [b[2] for b in bounds], limit),
            )
            return [_order(r) for r in await cur.fetchall()]

    # -- the mock market and chain ----------------------------------------------------------------------------

    async def seed_pools(self, pools: Sequence[Pool]) -> int:
        """Creates the genesis pools that do not exist yet; a restart keeps the market as trading left it."""
        async with self._conn() as conn, conn.transaction():
            created = 0
            for p in pools:
                cur = await conn.execute(
                    "INSERT INTO pools (id, dex, state) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                    (p.id, p.dex, Jsonb(p.to_json())),
                )
                created += cur.rowcount
            return created

    async def launch(self, token: Token, pool: Pool) -> bool:
        """Lists `token` and opens its pool in one transaction, then tells the trigger engine (snipers wait on it).
        False, changing nothing, when the token or the pool exists already."""
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO tokens (mint, symbol, decimals) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (token.mint, token.symbol, token.decimals),
            )
            if cur.rowcount != 1:
                return False
            cur = await conn.execute(
                "INSERT INTO pools (id, dex, state) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (pool.id, pool.dex, Jsonb(pool.to_json())),
            )
            if cur.rowcount != 1:
                raise StoreUnavailable(f"pool {pool.id} exists already")  # rolls the token back too
        await self._sink.pools_moved([pool.id])
        return True

    async def load_tokens(self) -> list[Token]:
        """The tokens listed after genesis."""
        async with self._conn() as conn:
            cur = await conn.execute("SELECT symbol, mint, decimals FROM tokens ORDER BY listed_at")
            return [Token(r[0], r[1], r[2]) for r in await cur.fetchall()]

    async def market_seed(self) -> tuple[bool, int | None]:
        """(whether the store has a market on record, the MARKET_SEED that made it: None if not known)."""
        async with self._conn() as conn:
            cur = await conn.execute("SELECT seed FROM market")
            row = await cur.fetchone()
            return (False, None) if row is None else (True, row[0])

    async def record_market_seed(self, seed: int) -> None:
        async with self._conn() as conn:
            await conn.execute("INSERT INTO market (seed) VALUES (%s) ON CONFLICT (singleton) DO NOTHING", (seed,))

    async def reset_market(self, seed: int, pools: Sequence[Pool]) -> int:
        """Puts every pool back to its genesis state of `seed` and drops pools genesis does not make.

        Each pool gets a new version, so every process's cached copy is re-read; settlements in flight wait on
        the pool locks and then price against the new pools."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT id FROM pools ORDER BY id FOR UPDATE")
            for p in pools:
                await conn.execute(
                    "INSERT INTO pools (id, dex, state) VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE "
                    "SET dex = EXCLUDED.dex, state = EXCLUDED.state, version = pools.version + 1, "
                    "updated_at = clock_timestamp()",
                    (p.id, p.dex, Jsonb(p.to_json())),
                )
            await conn.execute("DELETE FROM pools WHERE NOT (id = ANY(%s))", ([p.id for p in pools],))
            await conn.execute(
                "INSERT INTO market (seed) VALUES (%s) ON CONFLICT (singleton) DO UPDATE "
                "SET seed = EXCLUDED.seed, created_at = clock_timestamp()",
                (seed,),
            )
            return len(pools)

    async def load_pools(self) -> dict[str, Pool]:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT id, state FROM pools")
            return {r[0]: pool_from_json(r[1]) for r in await cur.fetchall()}

    async def pool_versions(self) -> dict[str, int]:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT id, version FROM pools")
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def load_pools_by_id(self, pool_ids: Sequence[str]) -> dict[str, tuple[Pool, int]]:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT id, state, version FROM pools WHERE id = ANY(%s)", (list(pool_ids),))
            return {r[0]: (pool_from_json(r[1]), r[2]) for r in await cur.fetchall()}

    async def record_submission(self, order_id: str, attempt: int, sub: Submission) -> Submission:
        """Puts the transaction in the mempool once; a resubmission returns the first one's fate."""
        async with self._conn() as conn:
            cur = await conn.execute(_INSERT_SUBMISSION, _submission_params(order_id, attempt, sub))
            if await cur.fetchone() is not None:
                return sub
            found = await self._submission(conn, sub.signature)
        assert found is not None
        return found

    @staticmethod
    async def _submission(conn: Any, signature: str) -> Submission | None:
        cur = await conn.execute(
            "SELECT signature, submitted_at, lands_at, expires_at FROM chain_transactions WHERE signature = %s",
            (signature,),
        )
        row = await cur.fetchone()
        return Submission(row[0], row[1], row[2], row[3]) if row else None

    async def settle(
        self,
        order: Order,
        signature: str,
        pool_ids: Sequence[str],
        decide: Callable[[dict[str, Pool]], Settlement],
        on_written: Callable[[dict[str, tuple[Pool, int]]], None] | None = None,
    ) -> OrderEvent | None:
        """Lands the swap: re-prices it on the pools as they are now, moves them, records it, confirms the order.
        None when the order is not (or no longer) waiting for this landing.

        `on_written` hears, once committed, of the pools as written and their new versions (the process's venue
        cache keeps them, so the next quote does not read back what this process just wrote).

        All in one transaction, with the order row and then the pools locked (in id order, so concurrent
        settlements cannot deadlock): no update is lost and no swap lands twice. `decide` may raise to refuse the
        swap (slippage), which leaves the pools untouched by it. Landings that come while others are in the store
        share their transaction (`workers/group_commit.py`): one lock of each pool, one write of each, one commit.
        """
        return await self._landings.submit(_Landing(order, signature, tuple(pool_ids), decide, on_written))

    async def _land(self, landings: Sequence[_Landing]) -> list[_Outcome]:
        written: dict[str, tuple[Pool, int]] = {}
        resting = False
        async with self._conn() as conn, conn.pipeline():
            outcomes = await self._settle(conn, landings, written)
            confirmed = [o for o in outcomes if isinstance(o, OrderEvent)]
            if confirmed:
                # Queued after the COMMIT, in the same round trip: its snapshot is taken after the commit, which is
                # what `_any_open` needs. An error here (the commit's included) is raised, never taken for "yes".
                cur = await conn.execute(_ANY_OPEN)
                row = await cur.fetchone()
                resting = bool(row is None or row[0])
                # Committed: before any await, so no quote reads these pools back.
                for on_written in {landing.on_written for landing in landings if landing.on_written is not None}:
                    on_written(written)
        if confirmed:
            await self._sink.committed(*confirmed)
        if resting:
            await self._sink.pools_moved(sorted(written))
        return outcomes

    @staticmethod
    async def _settle(conn: Any, landings: Sequence[_Landing], written: dict[str, tuple[Pool, int]]) -> list[_Outcome]:
        # In pipeline mode (the caller's), three round trips whatever the batch's size: the locking reads, then
        # the writes (the events' rows come back), then the commit.
        # The ids' arrays in binary (`%b`), as in _ROUTE_AND_SUBMIT: no per-element escaping.
        async with conn.transaction():
            order_cur = await conn.execute(
                "SELECT id, status, attempt FROM orders WHERE id = ANY(%b) ORDER BY id FOR UPDATE",
                (sorted({_uuid(landing.order.id) for landing in landings}),),
            )
            pools_cur = await conn.execute(
                "SELECT id, state, version FROM pools WHERE id = ANY(%b::text[]) ORDER BY id FOR UPDATE",
                (sorted({pool_id for landing in landings for pool_id in landing.pool_ids}),),
            )
            waiting = {str(r[0]): (OrderStatus(r[1]), r[2]) for r in await order_cur.fetchall()}
            rows = await pools_cur.fetchall()
            pools = {r[0]: pool_from_json(r[1]) for r in rows}
            versions = {r[0]: r[2] for r in rows}
            outcomes: list[_Outcome] = []
            landed: list[tuple[int, _Landing, Settlement]] = []
            moved: dict[str, Pool] = {}
            for landing in landings:
                # Popped: a second delivery of the same order in this batch finds it landed.
                found = waiting.pop(landing.order.id, None)
                if found is None or found[0] not in moves(LifecycleEvent.CONFIRM) or found[1] != landing.order.attempt:
                    outcomes.append(None)
                    continue
                try:
                    outcome = landing.decide(pools)
                except Exception as refused:  # refused (slippage, limit): that order's story, not the batch's
                    outcomes.append(refused)
                    continue
                # The next swap in the batch lands on the pools as this one left them, as if it came after.
                pools.update(outcome.pools_after)
                moved.update(outcome.pools_after)
                landed.append((len(outcomes), landing, outcome))
                outcomes.append(None)  # its event, once written
            if not landed:
                return outcomes
            await conn.cursor().executemany(
                "UPDATE pools SET state = %s, version = version + 1, updated_at = clock_timestamp() WHERE id = %s",
                [(Jsonb(pool.to_json()), pool_id) for pool_id, pool in moved.items()],
            )
            # One row at a time, in the order the swaps were applied: each gets its own clock_timestamp().
            await conn.cursor().executemany(
                "INSERT INTO settlements (order_id, signature, amount_in, amount_out, legs) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (_uuid(landing.order.id), landing.signature, landing.order.amount_in, o.amount_out, Jsonb(o.legs))
                    for _, landing, o in landed
                ],
            )
            details = [
                EventDetails(
                    tx_signature=landing.signature,
                    executed_price=o.executed_price,
                    amount_out=o.amount_out_text,
                    dex=landing.order.dex,
                )
                for _, landing, o in landed
            ]
            events_cur = conn.cursor()
            await events_cur.executemany(
                _TRANSITION,
                [
                    _transition_params(
                        landing.order.id, LifecycleEvent.CONFIRM, d, landing.order.attempt, None, o.amount_out
                    )
                    for (_, landing, o), d in zip(landed, details, strict=True)
                ],
                returning=True,
            )
            for (i, _, _), d in zip(landed, details, strict=True):
                row = await events_cur.fetchone()
                outcomes[i] = _written_event(row, d) if row else None
                events_cur.nextset()
        written.update({pool_id: (pool, versions[pool_id] + 1) for pool_id, pool in moved.items()})
        return outcomes

    async def drift_pool(
        self,
        pool_id: str,
        apply: Callable[[Pool, float], Pool],
        *,
        unchanged_since: datetime | None = None,
        lock_key: int = DRIFT_LOCK_KEY,
    ) -> Pool | None:
        """Moves one pool as an outside trader would, in one transaction; the new state, or None if skipped.

        `apply(pool, idle_seconds)` gets the pool as locked now (FOR UPDATE) and how long since it last changed,
        and returns its next state, written with version + 1. Skipped, changing nothing, when another process
        holds the drift lock (`pg_try_advisory_xact_lock`, so drifters never queue behind each other) or when
        the pool changed at or after `unchanged_since` (a drift or a settlement already moved it this interval:
        with every worker picking the same pool for an interval, that is what makes the drift happen once).
        """
        after = await self._drift_pool(pool_id, apply, unchanged_since, lock_key)
        if after is not None:
            async with self._conn() as conn:
                resting = await self._any_open(conn)
            if resting:
                await self._sink.pools_moved([pool_id])
        return after

    async def _drift_pool(
        self,
        pool_id: str,
        apply: Callable[[Pool, float], Pool],
        unchanged_since: datetime | None,
        lock_key: int,
    ) -> Pool | None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (lock_key,))
            got = await cur.fetchone()
            if got is None or not got[0]:
                return None
            cur = await conn.execute(
                "SELECT state, EXTRACT(EPOCH FROM clock_timestamp() - updated_at)::float8, "
                "updated_at >= %s IS TRUE FROM pools WHERE id = %s FOR UPDATE",
                (unchanged_since, pool_id),
            )
            row = await cur.fetchone()
            if row is None or row[2]:
                return None
            after = apply(pool_from_json(row[0]), float(row[1]))
            await conn.execute(
                "UPDATE pools SET state = %s, version = version + 1, updated_at = clock_timestamp() WHERE id = %s",
                (Jsonb(after.to_json()), pool_id),
            )
            return after


def _not_unavailable(exc: BaseException) -> bool:
    """Whether a failed batch is worth running again one request at a time (not when the store is down)."""
    return not is_unavailable(exc)


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "PostgreSQL is not reachable now" rather than a bug or bad data.

    psycopg_pool's PoolTimeout (no connection within the pool's timeout) is an OperationalError too.
    """
    return isinstance(exc, psycopg.OperationalError | StoreUnavailable)
