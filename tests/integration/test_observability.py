"""What an operator sees of real processes: `/metrics` of the server, two workers and the bridge, JSON logs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import TERMINAL, execute, watch_all
from tests.integration.bridge_harness import ahttp
from tests.integration.observed_stack import Observed, Samples, families, scrape, start_observed, total
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.stack import Stores

GRPC_ORDERS = 4
BRIDGE_ORDERS = 2


@pytest.fixture(scope="module")
def observed(stores: Stores, receiver: OtlpReceiver) -> Iterator[Observed]:
    o = start_observed(stores, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="100")
    yield o
    o.stop()


@pytest.fixture(scope="module")
async def placed(observed: Observed) -> AsyncIterator[list[str]]:
    """Orders placed through gRPC and through the bridge, each watched to its terminal event."""
    async with grpc.aio.insecure_channel(observed.stack.grpc_target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        ids = [await execute(stub, amount="0.1") for _ in range(GRPC_ORDERS)]
        for _ in range(BRIDGE_ORDERS):
            body = b'{"tokenIn":"SOL","tokenOut":"USDC","amount":"0.1"}'
            result = await ahttp("POST", f"{observed.http}/api/orders/execute", body)
            assert result.status in (200, 201, 202), result.body
            ids.append(result.json()["orderId"])
        for events in await asyncio.gather(*(watch_all(stub, i) for i in ids)):
            assert events[-1].status in TERMINAL
        yield ids


def _settled(observed: Observed, n: int, within: float = 15) -> tuple[Samples, list[Samples], Samples]:
    """Scrapes until the workers' terminal counts reach `n` (an observer counts right after the event is published,
    so a watcher may hear of it a moment before the counter moves), and returns the last scrapes."""
    deadline = time.monotonic() + within
    while True:
        serve = scrape(observed.serve_metrics)
        workers = [scrape(u) for u in observed.worker_metrics]
        bridge = scrape(observed.bridge_metrics)
        done = sum(total(w, "orderengine_order_seconds_count") for w in workers)
        priced = any(total(w, "orderengine_pool_price") > 0 for w in workers)
        if (done >= n and priced) or time.monotonic() > deadline:
            return serve, workers, bridge
        time.sleep(0.1)


def test_every_process_serves_metrics_that_agree_with_the_orders(observed: Observed, placed: list[str]) -> None:
    n = len(placed)
    serve, workers, bridge = _settled(observed, n)
    # The server writes each order's pending event; the workers every later one.
    assert total(serve, "orderengine_order_events_total", status="pending") == n
    assert sum(total(w, "orderengine_order_events_total", status="pending") for w in workers) == 0
    terminal = sum(
        total(w, "orderengine_order_events_total", status=s) for w in workers for s in ("confirmed", "failed")
    )
    assert terminal == n
    assert sum(total(w, "orderengine_order_seconds_count", order_type="market") for w in workers) == n
    assert sum(total(w, "orderengine_order_events_total", status="routing") for w in workers) >= n
    # Every message a worker processed is counted by the worker that processed it, none twice.
    assert sum(total(w, "dramatiq_messages_total", actor_name="advance_order") for w in workers) >= n
    assert any(total(w, "orderengine_pool_price", pair="SOL/USDC") > 0 for w in workers)
    # The server's calls: every ExecuteOrder answered OK (the bridge's two included), the watches ended.
    assert total(serve, "orderengine_grpc_calls_total", method="ExecuteOrder", code="OK") == n
    assert total(serve, "orderengine_grpc_calls_total", method="WatchOrder", code="OK") == n
    assert total(serve, "orderengine_grpc_streams_open", method="WatchOrder") == 0
    assert ("orderengine_event_hub_backlog", ()) in serve
    # The bridge's requests, by route template.
    assert total(bridge, "orderengine_http_requests_total", route="/api/orders/execute", method="POST") == BRIDGE_ORDERS
    assert total(bridge, "orderengine_http_requests_total", route="/health") >= 1


async def test_metrics_count_refusals_by_code(observed: Observed) -> None:
    async with grpc.aio.insecure_channel(observed.stack.grpc_target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        before = total(scrape(observed.serve_metrics), "orderengine_grpc_calls_total", code="INVALID_ARGUMENT")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ExecuteOrder(pb.ExecuteOrderRequest(token_in="SOL", token_out="SOL", amount="1"), timeout=10)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    after = total(scrape(observed.serve_metrics), "orderengine_grpc_calls_total", code="INVALID_ARGUMENT")
    assert after == before + 1


def _json_lines(observed: Observed, name: str) -> list[dict[str, Any]]:
    path = observed.stack.logs / f"{name}.log"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{name} wrote no log lines"
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line, not only ours: uvicorn's, Dramatiq's and the warnings' too
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        parsed.append(record)
    return parsed


def test_json_logs_carry_the_order_id_in_server_and_workers(observed: Observed, placed: list[str]) -> None:
    server = _json_lines(observed, "serve")
    worker = _json_lines(observed, "worker")
    bridge = _json_lines(observed, "bridge")
    assert any(r["logger"].startswith("uvicorn") for r in bridge)
    for order_id in placed:
        in_server = [r for r in server if r.get("order_id") == order_id]
        in_worker = [r for r in worker if r.get("order_id") == order_id]
        assert [r["status"] for r in in_server] == ["pending"], in_server
        statuses = [r["status"] for r in in_worker]
        assert statuses[0] == "routing" and statuses[-1] in ("confirmed", "failed"), statuses
        assert all(order_id in r["message"] for r in in_server + in_worker)
    confirmed = [r for r in worker if r.get("status") == "confirmed" and r.get("order_id") in placed]
    # Amounts as users write them: 0.1 SOL buys some tens of USDC, not tens of millions of base units.
    assert all(0 < float(r["amount_out"]) < 1000 for r in confirmed), confirmed


def _trace_of(receiver: OtlpReceiver, order_id: str, within: float = 20) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """The order's ExecuteOrder span and every span of its trace, once the worker's settling span is in."""
    deadline = time.monotonic() + within
    while True:
        spans = receiver.snapshot()
        roots = [s for s in spans if s.name.endswith("/ExecuteOrder") and s.attributes.get("order.id") == order_id]
        if roots:
            in_trace = [s for s in spans if s.trace_id == roots[0].trace_id]
            if any("order confirmed" in s.events or "order failed" in s.events for s in in_trace):
                return roots[0], in_trace
        assert time.monotonic() < deadline, f"no complete trace for {order_id}: {len(spans)} spans received"
        time.sleep(0.1)  # the processes export in batches: nothing to await across processes


async def test_one_order_is_one_trace_across_server_and_workers(
    observed: Observed, receiver: OtlpReceiver, placed: list[str]
) -> None:
    async with grpc.aio.insecure_channel(observed.stack.grpc_target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        order_id = await execute(stub, amount="0.1")
        events = await watch_all(stub, order_id)
    root, spans = await asyncio.to_thread(_trace_of, receiver, order_id)
    assert root.service == "orderengine-server" and root.parent_id == ""
    workers = [s for s in spans if s.service == "orderengine-worker"]
    assert workers and all(s.name == "advance_order" and s.attributes["order.id"] == order_id for s in workers)
    # Each message's span is the child of the span that sent it: the RPC's, then a worker message's.
    ids = {s.span_id for s in spans}
    assert all(s.parent_id in ids for s in workers)
    # Every message for the order, in any worker process, is in this one trace.
    every = [s for s in receiver.snapshot() if s.name == "advance_order" and s.attributes.get("order.id") == order_id]
    assert {s.trace_id for s in every} == {root.trace_id}
    # The spans name the order's stages, attempt and venue; all the order's events are on them.
    seen = [e for s in spans for e in s.events]
    assert "order pending" in root.events
    assert {"order routing", "order building", "order submitted", "order confirmed"} <= set(seen), seen
    settling = next(s for s in workers if "order confirmed" in s.events)
    assert settling.attributes["order.stage"] == "confirmed" and settling.attributes["order.attempt"] == 1
    assert settling.attributes["order.venue"] in ("raydium", "meteora")
    assert events[-1].status == pb.ORDER_STATUS_CONFIRMED
    # The logs name the same trace, in the server and in the worker.
    lines = [r for name in ("serve", "worker") for r in _json_lines(observed, name) if r.get("order_id") == order_id]
    assert {r.get("trace_id") for r in lines} == {root.trace_id}, lines


async def test_an_order_from_the_bridge_starts_its_trace_there(observed: Observed, receiver: OtlpReceiver) -> None:
    body = b'{"tokenIn":"SOL","tokenOut":"USDC","amount":"0.1"}'
    placed = await ahttp("POST", f"{observed.http}/api/orders/execute", body)
    order_id = placed.json()["orderId"]
    async with grpc.aio.insecure_channel(observed.stack.grpc_target) as ch:
        await watch_all(pb_grpc.OrderServiceStub(ch), order_id)
    root, spans = await asyncio.to_thread(_trace_of, receiver, order_id)
    http = [s for s in spans if s.service == "orderengine-bridge"]
    assert [s.name for s in http] == ["POST /api/orders/execute"], spans
    assert http[0].parent_id == "" and root.parent_id == http[0].span_id
    assert {s.service for s in spans} == {"orderengine-bridge", "orderengine-server", "orderengine-worker"}


def test_the_dashboard_and_scrape_config_name_what_the_processes_serve(observed: Observed, placed: list[str]) -> None:
    root = Path(__file__).resolve().parents[2] / "deploy"
    scrape_config = yaml.safe_load((root / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scrape_config["scrape_configs"]}
    assert jobs == {"orderengine-server", "orderengine-worker", "orderengine-bridge"}
    dashboard = json.loads((root / "grafana" / "orderengine.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:orderengine|dramatiq|process)_[a-z_]+)", target["expr"])
    }
    # Families, not samples: a labelled metric has no sample until its first event, but is declared from the start.
    served = {
        name
        for url in [observed.serve_metrics, *observed.worker_metrics, observed.bridge_metrics]
        for name in families(url)
    }
    bases = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in queried}
    assert queried and bases <= served, bases - served
