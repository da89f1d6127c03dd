"""Under venue and chain latency, the orders of a worker whose transactions land at about the same time share one
delayed message (`workers/revisits.py`); each still ends confirmed with every event, in a trace of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import assert_gap_free, execute, watch_all
from tests.integration.observed_stack import Observed, scrape, start_observed, total
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.stack import Stack, Stores
from workers import pipeline
from workers.config import Settings
from workers.domain import DEFAULT_OWNER, OrderStatus, OrderType
from workers.models import NewOrder
from workers.runtime import Engine

ORDERS = 24


@pytest.fixture(scope="module")
def observed(stores: Stores, receiver: OtlpReceiver) -> Iterator[Observed]:
    o = start_observed(
        stores,
        MARKET_LATENCY="realistic",
        MARKET_DRIFT_SECONDS="0",  # no outside trader: nothing but these orders moves the pools
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    yield o
    o.stop()


@pytest.fixture(scope="module")
async def placed(observed: Observed) -> AsyncIterator[dict[str, list[pb.OrderEvent]]]:
    """ORDERS small orders placed at once, both ways, each watched to its end."""
    async with grpc.aio.insecure_channel(observed.stack.grpc_target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        ids = await asyncio.gather(
            *(execute(stub, *(("SOL", "USDC", "0.05") if i % 2 else ("USDC", "SOL", "5"))) for i in range(ORDERS))
        )
        watched = await asyncio.gather(*(watch_all(stub, i) for i in ids))
        yield dict(zip(ids, watched, strict=True))


def _shared_messages(observed: Observed, within: float = 15) -> float:
    """The `advance_orders` messages the workers processed, once they count any (a counter moves just after the
    message's last event is published, so a watcher may hear of it first)."""
    deadline = time.monotonic() + within
    while True:
        n = sum(
            total(scrape(u), "dramatiq_messages_total", actor_name="advance_orders") for u in observed.worker_metrics
        )
        if n > 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.1)  # another process's counter: nothing to await across processes


def test_orders_landing_together_share_their_delayed_messages(
    observed: Observed, placed: dict[str, list[pb.OrderEvent]]
) -> None:
    for events in placed.values():
        assert [e.status for e in events][-1] == pb.ORDER_STATUS_CONFIRMED, events[-1]
        assert_gap_free(events)
    # Every order's landing was looked at in a shared message (a transaction lands a slot or more after it is
    # sent, so none lands within its first message), and fewer messages than orders were needed for it.
    assert 1 <= _shared_messages(observed) < ORDERS


def _trace_of(receiver: OtlpReceiver, order_id: str, within: float = 20) -> list[ReceivedSpan]:
    """The spans of every trace that holds one of the order's spans, once its confirmation and every parent of
    the order's spans are in (the processes export in batches, each on its own schedule)."""
    deadline = time.monotonic() + within
    while True:
        spans = receiver.snapshot()
        mine = [s for s in spans if s.attributes.get("order.id") == order_id]
        trace_ids = {s.trace_id for s in mine}
        found = [s for s in spans if s.trace_id in trace_ids]
        ids = {s.span_id for s in found}
        if any("order confirmed" in s.events for s in mine) and all(s.parent_id in ids | {""} for s in found):
            return found
        assert time.monotonic() < deadline, f"no complete trace for {order_id}: {len(spans)} spans received"
        time.sleep(0.1)  # nothing to await across processes


async def test_an_order_in_a_shared_message_keeps_a_trace_of_its_own(
    receiver: OtlpReceiver, placed: dict[str, list[pb.OrderEvent]]
) -> None:
    for order_id in list(placed)[:3]:
        spans = await asyncio.to_thread(_trace_of, receiver, order_id)
        assert len({s.trace_id for s in spans}) == 1, [
            (s.service, s.name, s.trace_id[:6], s.span_id[:6], s.parent_id[:6], s.attributes.get("order.id"), s.events)
            for s in spans
        ]  # one trace, rooted at the order's ExecuteOrder
        assert any(s.name.endswith("/ExecuteOrder") and s.parent_id == "" for s in spans)
        landing = [s for s in spans if s.name == "advance_orders"]
        # Its own span in the shared message, a child of the message that submitted it, with its confirmation.
        assert [s.attributes["order.id"] for s in landing] == [order_id]
        ids = {s.span_id for s in spans}
        assert landing[0].parent_id in ids
        assert "order confirmed" in landing[0].events
        assert landing[0].attributes["messaging.batch.message_count"] >= 1


class RecordingQueue:
    """Records the per-order messages a shared message hands its failed orders to (nothing consumes them here)."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[str, int]] = []

    async def enqueue_async(self, order_id: str, delay_ms: int = 0) -> None:
        self.enqueued.append((order_id, delay_ms))


@pytest.fixture(scope="module")
def quiet_stack(stores: Stores) -> Iterator[Stack]:
    """Migrated stores and a server, with no worker: the test advances the orders itself."""
    s = Stack.launch(stores, {}, worker=False)
    yield s
    s.stop()


async def test_an_order_that_fails_in_a_shared_message_is_handed_to_a_message_of_its_own(quiet_stack: Stack) -> None:
    settings = Settings(redis_url=quiet_stack.redis_url, database_url=quiet_stack.database_url, market_latency="zero")
    engine = await Engine.open(settings, pool_size=4)
    queue = RecordingQueue()
    try:

        async def place(token_out: str) -> str:
            new = NewOrder(DEFAULT_OWNER, OrderType.MARKET, "SOL", token_out, amount_in=10_000_000, slippage_bps=100)
            order, _ = await engine.store.create_order(new)
            return order.id

        good, bad = await place("USDC"), await place("SOL")  # SOL for SOL: no route, a permanent failure
        await pipeline.advance_many(replace(engine, queue=queue), [good, bad])  # type: ignore[arg-type]
        settled, unsettled = await engine.store.get_order(good), await engine.store.get_order(bad)
        assert settled is not None and settled.status is OrderStatus.CONFIRMED
        # Not failed here: its failure is decided where every failure is, on the message it was handed to.
        assert unsettled is not None and not unsettled.status.is_final
        assert queue.enqueued == [(bad, 0)]
    finally:
        await engine.close()
