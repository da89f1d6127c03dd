"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc

TERMINAL = (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_FAILED)
LIFECYCLE = [
    pb.ORDER_STATUS_PENDING,
    pb.ORDER_STATUS_ROUTING,
    pb.ORDER_STATUS_BUILDING,
    pb.ORDER_STATUS_SUBMITTED,
    pb.ORDER_STATUS_CONFIRMED,
]


async def execute(
    stub: pb_grpc.OrderServiceAsyncStub, token_in: str = "SOL", token_out: str = "USDC", amount: str = "1", **kw: Any
) -> str:
    resp = await stub.ExecuteOrder(
        pb.ExecuteOrderRequest(token_in=token_in, token_out=token_out, amount=amount, **kw), timeout=10
    )
    return resp.order_id


async def watch_all(
    stub: pb_grpc.OrderServiceAsyncStub, order_id: str, from_seq: int = 0, within: float = 30
) -> list[pb.OrderEvent]:
    """Every event the stream sends until it ends by itself (which it must, after the terminal event)."""

    async def collect() -> list[pb.OrderEvent]:
        call = stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id, from_seq=from_seq))
        return [r.event async for r in call]

    return await asyncio.wait_for(collect(), within)


def statuses(events: list[pb.OrderEvent]) -> list[int]:
    return [e.status for e in events]


def assert_gap_free(events: list[pb.OrderEvent], start: int = 1) -> None:
    assert [e.seq for e in events] == list(range(start, start + len(events))), [e.seq for e in events]


def count_rows(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])
