"""A worker SIGKILLed while the trigger engine is firing 1,000 resting orders: a new worker finishes the job, and
every order fires once and settles once (nothing lost, nothing duplicated)."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal

import grpc
import psycopg

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import FIGURES, check_ledger, watch_many
from tests.stack import Stack, Stores
from workers.config import Settings
from workers.domain import DEFAULT_OWNER, LifecycleEvent, OrderType
from workers.market import SOL, USDC
from workers.models import NewOrder
from workers.runtime import Engine

ORDERS = 1000
FIRED = [
    pb.ORDER_STATUS_PENDING,
    pb.ORDER_STATUS_OPEN,
    pb.ORDER_STATUS_ROUTING,
    pb.ORDER_STATUS_BUILDING,
    pb.ORDER_STATUS_SUBMITTED,
    pb.ORDER_STATUS_CONFIRMED,
]


def routing_events(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM order_events WHERE status = 'routing'").fetchone()
    assert row is not None
    return int(row[0])


async def test_sigkill_worker_while_triggering(fault_stores: Stores) -> None:
    stack = Stack.start(
        fault_stores,
        BROKER_HEARTBEAT_TIMEOUT_MS="3000",
        RECONCILE_IDLE_SECONDS="4",
        RECONCILE_INTERVAL_SECONDS="1",
    )
    engine = await Engine.open(Settings(redis_url=stack.redis_url, database_url=stack.database_url), pool_size=4)
    try:
        async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            quote = await stub.GetQuote(pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount="0.001"))
            limit = (Decimal(quote.route.amount_out) / Decimal("0.001") * Decimal("1.001")).quantize(Decimal("0.01"))
            # Resting just above the market, put straight into `open` (no worker looks at them until a move).
            ids = []
            for _ in range(ORDERS):
                new = NewOrder(
                    owner_id=DEFAULT_OWNER,
                    order_type=OrderType.LIMIT,
                    token_in="SOL",
                    token_out="USDC",
                    amount_in=1_000_000,
                    slippage_bps=300,
                    limit_price=limit,
                    trigger_in=SOL.mint,
                    trigger_out=USDC.mint,
                )
                order, _ = await engine.store.create_order(new)
                assert await engine.store.transition(order.id, LifecycleEvent.REST) is not None
                ids.append(order.id)

            # Someone buys SOL: its settlement is the pool move that makes all 1,000 reachable at once.
            push = await stub.ExecuteOrder(
                pb.ExecuteOrderRequest(token_in="USDC", token_out="SOL", amount="100000", slippage_bps=500)
            )
            deadline = time.monotonic() + 60
            while routing_events(stack.database_url) < 100 + 1:  # the push's own routing event, then 100 fired
                assert time.monotonic() < deadline, "the trigger engine never started firing"
                await asyncio.sleep(0.005)
            worker = stack.processes["worker"]
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            fired_at_kill = routing_events(stack.database_url) - 1
            killed_at = time.monotonic()
            stack.spawn("worker-after-kill", "worker")

            watched = await watch_many(stack.grpc_target, [*ids, push.order_id], within=240)
            recovered_s = time.monotonic() - killed_at
        for w in watched[:-1]:
            assert [e.status for e in w.events] == FIRED, (w.order_id, [e.status for e in w.events])
            assert [e.seq for e in w.events] == list(range(1, len(FIRED) + 1))
        check = check_ledger(stack.database_url)
        assert check.double_settled == 0 and check.non_final == 0
        assert check.settlements == ORDERS + 1
        FIGURES["worker SIGKILL while triggering"] = {
            "resting orders made reachable by one move": ORDERS,
            "fired before the kill": fired_at_kill,
            "fired once and confirmed": sum(
                1 for w in watched[:-1] if w.events[-1].status == pb.ORDER_STATUS_CONFIRMED
            ),
            "fired twice": 0,
            "lost": check.non_final,
            "settled twice": check.double_settled,
            "all final after kill (s)": round(recovered_s, 1),
        }
    finally:
        await engine.close()
        stack.stop()
