"""A market order end to end over gRPC: every event, late and resuming watchers, reads, concurrency."""

from __future__ import annotations

import asyncio
import uuid

import base58
import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from tests.helpers import LIFECYCLE, assert_gap_free, count_rows, execute, statuses, watch_all
from tests.stack import Stack


async def test_full_order_every_event(stub) -> None:
    order_id = await execute(stub, "SOL", "USDC", "1.5", slippage_bps=100)
    assert uuid.UUID(order_id)
    events = await watch_all(stub, order_id)

    assert statuses(events) == LIFECYCLE
    assert_gap_free(events)
    assert all(e.order_id == order_id and e.attempt == 1 for e in events)
    assert all(e.time.seconds > 0 for e in events)
    assert [e.time.ToDatetime() for e in events] == sorted(e.time.ToDatetime() for e in events)
    assert not any(e.HasField("error") for e in events)

    _, _, building, submitted, confirmed = events
    assert building.dex in (pb.DEX_RAYDIUM, pb.DEX_METEORA)
    assert building.route.legs and building.route.legs[0].token_in == "SOL"
    assert float(building.route.min_amount_out) == pytest.approx(float(building.route.amount_out) * 0.99, rel=1e-6)
    # SOL is native: the transaction wraps it into wSOL first and closes the wSOL account after the swap.
    assert "wrap_sol" in building.instructions and "swap" in building.instructions
    assert building.instructions[-1] == "unwrap_sol"
    assert len(base58.b58decode(submitted.tx_signature)) == 64
    assert confirmed.tx_signature == submitted.tx_signature
    assert float(confirmed.amount_out) >= float(building.route.min_amount_out)
    assert float(confirmed.executed_price) == pytest.approx(float(confirmed.amount_out) / 1.5, rel=1e-6)

    order = (await stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert order.status == pb.ORDER_STATUS_CONFIRMED
    assert (order.token_in, order.token_out, order.amount, order.slippage_bps) == ("SOL", "USDC", "1.5", 100)
    assert order.last_seq == 5 and order.attempt == 1
    assert order.tx_signature == confirmed.tx_signature and order.amount_out == confirmed.amount_out
    assert order.executed_price == confirmed.executed_price
    assert order.route.legs == building.route.legs


async def test_late_watcher_gets_whole_history(stub) -> None:
    order_id = await execute(stub)
    first = await watch_all(stub, order_id)
    late = await watch_all(stub, order_id)  # the order is final by now
    assert late == first
    assert statuses(late) == LIFECYCLE


async def test_resume_from_seq(stub) -> None:
    order_id = await execute(stub, "USDC", "SOL", "250")
    everything = await watch_all(stub, order_id)
    for from_seq in range(len(everything) + 1):
        rest = await watch_all(stub, order_id, from_seq=from_seq)
        assert rest == everything[from_seq:]


async def test_watch_started_before_work_sees_each_event_once(stub) -> None:
    # Watchers racing the worker: the stream subscribes, replays and forwards live events without duplicates.
    order_ids = [await execute(stub, amount="0.1") for _ in range(5)]
    histories = await asyncio.gather(*(watch_all(stub, oid) for oid in order_ids))
    for history in histories:
        assert statuses(history) == LIFECYCLE
        assert_gap_free(history)


async def test_twenty_concurrent_orders_all_confirm_gap_free(stub, stack: Stack) -> None:
    pairs = [("SOL", "USDC", "2"), ("USDC", "SOL", "300"), ("SOL", "USDT", "1"), ("USDC", "USDT", "50")]
    order_ids = await asyncio.gather(*(execute(stub, *pairs[i % len(pairs)]) for i in range(20)))
    assert len(set(order_ids)) == 20
    histories = await asyncio.gather(*(watch_all(stub, oid) for oid in order_ids))
    for history in histories:
        assert statuses(history) == LIFECYCLE
        assert_gap_free(history)
    ids = ",".join(f"'{oid}'" for oid in order_ids)
    settled = count_rows(stack.database_url, f"settlements WHERE order_id IN ({ids})")
    assert settled == 20


async def test_get_unknown_order_is_not_found(stub) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetOrder(pb.GetOrderRequest(order_id=missing))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await watch_all(stub, missing)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_orders_newest_first_paged_and_filtered(stub) -> None:
    mine = [await execute(stub, amount=f"0.0{i + 1}") for i in range(5)]
    for oid in mine:
        await watch_all(stub, oid)

    seen: list[pb.Order] = []
    token = ""
    while True:
        page = await stub.ListOrders(pb.ListOrdersRequest(page_size=2, page_token=token))
        assert len(page.orders) <= 2
        seen += page.orders
        token = page.next_page_token
        if not token:
            break
    ids = [o.order_id for o in seen]
    assert len(ids) == len(set(ids)), "pages overlap"
    created = [o.created_at.ToDatetime() for o in seen]
    assert created == sorted(created, reverse=True)
    assert ids.index(mine[-1]) < ids.index(mine[0])  # newest first
    assert set(mine) <= set(ids)

    confirmed = await stub.ListOrders(pb.ListOrdersRequest(page_size=500, status=pb.ORDER_STATUS_CONFIRMED))
    assert confirmed.orders and all(o.status == pb.ORDER_STATUS_CONFIRMED for o in confirmed.orders)
    failed = await stub.ListOrders(pb.ListOrdersRequest(status=pb.ORDER_STATUS_FAILED))
    assert not set(mine) & {o.order_id for o in failed.orders}


async def test_mint_addresses_are_accepted(stub) -> None:
    usdc_mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    order_id = await execute(stub, "So11111111111111111111111111111111111111112", usdc_mint, "0.5")
    events = await watch_all(stub, order_id)
    assert statuses(events) == LIFECYCLE
    order = (await stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert (order.token_in, order.token_out) == ("SOL", "USDC")


async def test_get_quote_answers_without_placing_an_order(stub, stack: Stack) -> None:
    before = count_rows(stack.database_url, "orders")
    quote = await stub.GetQuote(pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount="1"))
    assert {q.dex for q in quote.quotes} == {pb.DEX_RAYDIUM, pb.DEX_METEORA}
    assert quote.route.legs and float(quote.route.amount_out) > 0
    assert float(quote.route.amount_out) >= max(float(q.amount_out) for q in quote.quotes) * (1 - 1e-9)
    assert count_rows(stack.database_url, "orders") == before
