"""Sniper orders and market launches over real gRPC, Redis and PostgreSQL: a sniper waits on a mint nobody lists
yet, `orderengine market launch` lists it with a pool, and the sniper buys it on that pool."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import base58
import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import assert_gap_free, execute, statuses, watch_all
from tests.integration.test_resting_orders import events_until
from tests.stack import ROOT, Stack, Stores


@pytest.fixture(scope="module")
def sniper_stack(stores: Stores) -> Iterator[Stack]:
    s = Stack.start(stores)
    yield s
    s.stop()


@pytest.fixture(scope="module")
async def sstub(sniper_stack: Stack) -> AsyncIterator[pb_grpc.OrderServiceAsyncStub]:
    async with grpc.aio.insecure_channel(sniper_stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


def new_mint() -> str:
    return base58.b58encode(os.urandom(32)).decode()


def launch(stack: Stack, symbol: str, mint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "market", "launch", symbol, "--mint", mint, *extra],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_sniper_waits_for_its_token_and_buys_it_on_launch(sstub, sniper_stack: Stack) -> None:
    mint = new_mint()
    # A cap the launch price never meets: that one keeps waiting.
    capped_id = await execute(sstub, "SOL", mint, "0.5", order_type=pb.ORDER_TYPE_SNIPER, limit_price="1000000000")
    order_id = await execute(sstub, "SOL", mint, "0.5", order_type=pb.ORDER_TYPE_SNIPER)
    rested = await events_until(sstub, order_id, pb.ORDER_STATUS_OPEN)
    assert statuses(rested) == [pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_OPEN]
    order = (await sstub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert (order.order_type, order.token_out) == (pb.ORDER_TYPE_SNIPER, mint)

    launched = launch(sniper_stack, "PEPE2", mint, "--price", "0.0001", "--liquidity", "100")
    assert launched.returncode == 0, launched.stderr
    assert "raydium-PEPE2-SOL" in launched.stdout

    events = await watch_all(sstub, order_id)
    assert statuses(events) == [
        pb.ORDER_STATUS_PENDING,
        pb.ORDER_STATUS_OPEN,
        pb.ORDER_STATUS_ROUTING,
        pb.ORDER_STATUS_BUILDING,
        pb.ORDER_STATUS_SUBMITTED,
        pb.ORDER_STATUS_CONFIRMED,
    ]
    assert_gap_free(events)
    assert events[3].route.legs[0].pool_id == "raydium-PEPE2-SOL"
    # 0.5 SOL at 0.0001 SOL per token, less the fee and the price impact on a 100 SOL pool.
    assert Decimal("4000") < Decimal(events[-1].amount_out) < Decimal("5000")
    capped = (await sstub.GetOrder(pb.GetOrderRequest(order_id=capped_id))).order
    assert capped.status == pb.ORDER_STATUS_OPEN

    # The launched token trades like any other now, by symbol.
    bought = await execute(sstub, "SOL", "PEPE2", "0.1")
    assert statuses(await watch_all(sstub, bought))[-1] == pb.ORDER_STATUS_CONFIRMED


def test_a_launch_is_refused_for_a_bad_mint_or_a_listed_token(sniper_stack: Stack) -> None:
    assert launch(sniper_stack, "BAD", "not-a-mint").returncode == 2
    assert launch(sniper_stack, "SOL", new_mint()).returncode == 1
    mint = new_mint()
    assert launch(sniper_stack, "ONCE", mint).returncode == 0
    again = launch(sniper_stack, "ONCE", mint)
    assert again.returncode == 1 and "listed already" in again.stderr
