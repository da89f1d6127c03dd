"""What the fault-injection tests share: a realistic-latency system on stores they may break, resuming watchers,
and the ledger checks that prove nothing was lost or done twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import psycopg

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.replay import ExactlyOnce, assert_exactly_once
from tests.stack import Stack, Stores

# Figures each fault test measured, printed at the end of the run (see tests/conftest.py) for RELIABILITY.md.
FIGURES: dict[str, dict[str, object]] = {}

FAULT_ENV = {
    "MARKET_LATENCY": "realistic",
    "RETRY_MIN_BACKOFF_MS": "1000",
    "RETRY_MAX_BACKOFF_MS": "4000",
    "WORKER_THREADS": "32",
    # Faster than the defaults (15 s, 30 s) so that recovery fits a test; the mechanisms are the same.
    "BROKER_HEARTBEAT_TIMEOUT_MS": "5000",
    "RECONCILE_IDLE_SECONDS": "8",
    "RECONCILE_INTERVAL_SECONDS": "1",
    # Pools move only by settlement, so the replay from genesis must equal the stored market exactly: no drift,
    # and no launch (one lists a pool the replay does not know whenever a test spans a 5-minute boundary).
    "MARKET_DRIFT_SECONDS": "0",
    "MARKET_LAUNCH_SECONDS": "0",
}


def start_fault_stack(stores: Stores, **env: str) -> Stack:
    return Stack.start(stores, **(FAULT_ENV | env))


async def place_orders(target: str, n: int, *, concurrency: int = 50) -> list[str]:
    """Places n small SOL/USDC orders (both directions), answering when every one is accepted."""
    sem = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)

        async def one(i: int) -> str:
            req = (
                pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="0.5", slippage_bps=300)
                if i % 2 == 0
                else pb.ExecuteOrderRequest(token_in="USDC", token_out="SOL", amount="80", slippage_bps=300)
            )
            async with sem:
                return (await stub.ExecuteOrder(req, timeout=30)).order_id

        return list(await asyncio.gather(*(one(i) for i in range(n))))


@dataclass
class Watched:
    order_id: str
    events: list[pb.OrderEvent] = field(default_factory=list)
    reconnects: int = 0


async def watch_resuming(
    stub: pb_grpc.OrderServiceAsyncStub,
    order_id: str,
    within: float = 120,
    on_event: Callable[[pb.OrderEvent], None] | None = None,
) -> Watched:
    """Watches to the terminal event, resuming with from_seq whenever the stream ends UNAVAILABLE."""
    watched = Watched(order_id)
    deadline = time.monotonic() + within
    while True:
        last = watched.events[-1].seq if watched.events else 0
        try:
            call = stub.WatchOrder(
                pb.WatchOrderRequest(order_id=order_id, from_seq=last),
                wait_for_ready=True,  # a restarting server is awaited, not polled
                timeout=max(deadline - time.monotonic(), 1),
            )
            async for resp in call:
                watched.events.append(resp.event)
                if on_event is not None:
                    on_event(resp.event)
            return watched
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            watched.reconnects += 1
            # The server is up but a store is not: back off briefly before asking again.
            await asyncio.sleep(0.25)


async def watch_many(
    target: str,
    order_ids: list[str],
    within: float = 120,
    on_event: Callable[[pb.OrderEvent], None] | None = None,
) -> list[Watched]:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        return list(await asyncio.gather(*(watch_resuming(stub, oid, within, on_event) for oid in order_ids)))


class EventCounter:
    """Counts events seen by watchers, and the orders they came from, and lets a test await a threshold of either
    (no polling)."""

    def __init__(self) -> None:
        self.count = 0
        self.orders: set[str] = set()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def __call__(self, event: pb.OrderEvent) -> None:
        self.count += 1
        self.orders.add(event.order_id)
        for done, fut in self._waiters:
            if done() and not fut.done():
                fut.set_result(None)

    async def reached(self, n: int, within: float = 60) -> None:
        """`n` events in all, over every stream."""
        await self._until(lambda: self.count >= n, within)

    async def streaming(self, n: int, within: float = 60) -> None:
        """`n` orders' streams open: each has sent at least one event."""
        await self._until(lambda: len(self.orders) >= n, within)

    async def _until(self, done: Callable[[], bool], within: float) -> None:
        if done():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((done, fut))
        await asyncio.wait_for(fut, within)


def non_final(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM orders WHERE status NOT IN ('confirmed', 'failed')").fetchone()
        assert row is not None
        return int(row[0])


def reconciled(database_url: str) -> int:
    """Orders the reconciler re-drove (it stamps `nudged_at` on each one it claims)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM orders WHERE nudged_at IS NOT NULL").fetchone()
        assert row is not None
        return int(row[0])


@dataclass
class LedgerCheck:
    orders: int
    confirmed: int
    failed: int
    non_final: int
    gaps: int
    settlements: int
    double_settled: int
    settled_but_not_confirmed: int
    orders_without_pending: int
    exactly_once: ExactlyOnce | None  # None: called with a bare database URL, whose market seed is unknown

    @property
    def replayed(self) -> int:
        """Confirmed orders replayed from genesis to the stored pools (only for a check given the Stack)."""
        assert self.exactly_once is not None, "no replay: check_ledger was given a URL, not the Stack"
        return self.exactly_once.replayed


def check_ledger(stack: Stack | str) -> LedgerCheck:
    """Every order final, every history gap-free from 1, one settlement per confirmed order and none otherwise, and
    the market replayed from genesis equal to the stored one (tests/replay.py)."""
    if isinstance(stack, str):
        database_url, exactly_once = stack, None
    else:
        database_url = stack.database_url
        exactly_once = assert_exactly_once(database_url, int(stack.env["MARKET_SEED"]))
    with psycopg.connect(database_url) as conn:

        def one(sql: str) -> int:
            row = conn.execute(sql).fetchone()
            assert row is not None
            return int(row[0])

        return LedgerCheck(
            orders=one("SELECT count(*) FROM orders"),
            confirmed=one("SELECT count(*) FROM orders WHERE status = 'confirmed'"),
            failed=one("SELECT count(*) FROM orders WHERE status = 'failed'"),
            non_final=one("SELECT count(*) FROM orders WHERE status NOT IN ('confirmed', 'failed')"),
            gaps=one(
                "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM order_events e WHERE e.order_id = o.id) "
                "<> o.last_seq OR (SELECT max(seq) FROM order_events e WHERE e.order_id = o.id) <> o.last_seq"
            ),
            settlements=one("SELECT count(*) FROM settlements"),
            double_settled=one(
                "SELECT count(*) FROM (SELECT order_id FROM settlements GROUP BY order_id HAVING count(*) > 1) d"
            ),
            settled_but_not_confirmed=one(
                "SELECT count(*) FROM settlements s JOIN orders o ON o.id = s.order_id WHERE o.status <> 'confirmed'"
            ),
            orders_without_pending=one(
                "SELECT count(*) FROM orders o WHERE NOT EXISTS "
                "(SELECT 1 FROM order_events e WHERE e.order_id = o.id AND e.seq = 1 AND e.status = 'pending')"
            ),
            exactly_once=exactly_once,
        )


def assert_nothing_lost(check: LedgerCheck, accepted: int) -> None:
    assert check.orders == accepted, check
    assert check.non_final == 0, check
    assert check.gaps == 0, check
    assert check.double_settled == 0 and check.settled_but_not_confirmed == 0, check
    assert check.settlements == check.confirmed, check
    assert check.orders_without_pending == 0, check
    assert check.exactly_once is None or check.exactly_once.replayed == check.confirmed, check


def last_seqs(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {str(r[0]): int(r[1]) for r in conn.execute("SELECT id, last_seq FROM orders")}


@dataclass(frozen=True)
class Delivery:
    """What the watchers saw against what PostgreSQL stored, counted before anything is asserted."""

    events: int
    missed: int  # stored events a watcher never saw
    duplicated: int  # events a watcher saw more than once


def delivery(watched: list[Watched], database_url: str) -> Delivery:
    stored = last_seqs(database_url)
    missed = duplicated = 0
    for w in watched:
        seqs = [e.seq for e in w.events]
        missed += len(set(range(1, stored[w.order_id] + 1)) - set(seqs))
        duplicated += len(seqs) - len(set(seqs))
    return Delivery(sum(len(w.events) for w in watched), missed, duplicated)


def final_after(watched: list[Watched], wall_time: float) -> list[Watched]:
    """Watchers whose terminal event was stored after `wall_time` (time.time()): still streaming at that moment."""
    return [w for w in watched if w.events[-1].time.ToNanoseconds() > wall_time * 1e9]


def assert_each_event_once(watched: list[Watched]) -> None:
    for w in watched:
        seqs = [e.seq for e in w.events]
        assert seqs == list(range(1, len(seqs) + 1)), (w.order_id, seqs)
        assert w.events[-1].status in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_FAILED)


async def execute_when_available(stub: pb_grpc.OrderServiceAsyncStub, within: float) -> str:
    """What a client does after an outage: retry UNAVAILABLE with a short backoff until accepted."""
    deadline = time.monotonic() + within
    while True:
        try:
            req = pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="1")
            return (await stub.ExecuteOrder(req, wait_for_ready=True, timeout=10)).order_id
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
