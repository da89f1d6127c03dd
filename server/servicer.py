"""OrderService: translates protobuf to domain calls and back. Decisions live in `workers`."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

import grpc

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server import convert
from server.validation import (
    InvalidArgument,
    parse_amount,
    parse_execute,
    parse_order_id,
    parse_pair,
    parse_slippage,
    parse_status_filter,
)
from server.watch import EventHub, HubDown, HubUnavailable
from workers.domain import DEFAULT_OWNER, PermanentFailure
from workers.market import resolve_token
from workers.models import OrderEvent
from workers.price_impact import check_price_impact
from workers.publisher import EventPublisher
from workers.queue import OrderQueue
from workers.store import OrderStore, StoreUnavailable, is_unavailable
from workers.venues import Venues
from workers.views import route_view

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# A watcher that hears nothing for this long re-reads the store, in case a publish was lost. The wait doubles
# (up to IDLE_RECHECK_MAX_S) while the order stays silent and is spread at random, so thousands of idle streams
# do not all read PostgreSQL at the same moment.
IDLE_RECHECK_S = 10.0
IDLE_RECHECK_MAX_S = 60.0
# Streams read the store (replay, gap, silence) through at most WATCH_READS pool connections at once: a burst of
# thousands of new streams queues here, up to WATCH_READ_WAIT_S, instead of failing on the pool's short timeout
# or taking every connection from ExecuteOrder.
WATCH_READS = 12
WATCH_READ_WAIT_S = 30.0


class OrderService(pb_grpc.OrderServiceServicer):
    def __init__(
        self, store: OrderStore, hub: EventHub, queue: OrderQueue, venues: Venues, publisher: EventPublisher
    ) -> None:
        self.store = store
        self.hub = hub
        self.queue = queue
        self.venues = venues
        self.publisher = publisher
        self._watch_reads = asyncio.Semaphore(WATCH_READS)

    async def _events_after(self, order_id: str, last: int, owner_id: str | None = None) -> list[OrderEvent]:
        try:
            await asyncio.wait_for(self._watch_reads.acquire(), WATCH_READ_WAIT_S)
        except TimeoutError:
            raise StoreUnavailable(f"no connection free for {WATCH_READ_WAIT_S:.0f} s (busy)") from None
        try:
            return await self.store.events_after(order_id, last, owner_id)
        finally:
            self._watch_reads.release()

    async def ExecuteOrder(
        self,
        request: pb.ExecuteOrderRequest,
        context: grpc.aio.ServicerContext[pb.ExecuteOrderRequest, pb.ExecuteOrderResponse],
    ) -> pb.ExecuteOrderResponse:
        new = parse_execute(request, owner_id=DEFAULT_OWNER)
        impact = await self.venues.price_impact_bps(
            resolve_token(new.token_in), resolve_token(new.token_out), new.amount_in
        )
        if impact is not None:  # refused before anything is stored
            check_price_impact(impact, new.max_price_impact_bps, "quoted now,")
        order, pending = await self.store.create_order(new)
        if pending is not None:
            try:
                await self.queue.enqueue_async(order.id)
            except Exception as exc:
                # Leave nothing half-written: a stored order that no worker will hear of until the reconciler
                # runs would execute after its client was told it failed.
                await self.store.forget_unstarted(order.id)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"the order queue (Redis) is unavailable: {exc}")
            await self.publisher.publish(pending)
            log.info("order %s: pending (%s %s -> %s)", order.id, new.amount_in, new.token_in, new.token_out)
        return pb.ExecuteOrderResponse(order_id=order.id)

    async def WatchOrder(
        self,
        request: pb.WatchOrderRequest,
        context: grpc.aio.ServicerContext[pb.WatchOrderRequest, pb.WatchOrderResponse],
    ) -> AsyncIterator[pb.WatchOrderResponse]:
        order_id = parse_order_id(request.order_id)
        last = request.from_seq
        if last > 0:  # from the start, the replay below doubles as the existence check (every order has seq 1)
            order = await self.store.get_order(order_id, DEFAULT_OWNER)
            if order is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"order {order_id} not found")
            if order.status.is_final and last >= order.last_seq:
                return  # the client has seen the terminal event already
        try:
            async with self.hub.subscription(order_id) as live:
                # Subscribed first, replayed second: an event published meanwhile is in `live` and deduplicated.
                replay = await self._events_after(order_id, last, DEFAULT_OWNER)
                if last == 0 and not replay:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"order {order_id} not found")
                for event in replay:
                    yield pb.WatchOrderResponse(event=convert.event(event))
                    last = event.seq
                    if event.is_final:
                        return
                idle = IDLE_RECHECK_S
                while True:
                    try:
                        item = await asyncio.wait_for(live.get(), idle * random.uniform(1.0, 1.5))
                        idle = IDLE_RECHECK_S
                    except TimeoutError:
                        item = None
                        idle = min(idle * 2, IDLE_RECHECK_MAX_S)
                    if isinstance(item, HubDown):
                        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{item.reason}; resume with from_seq={last}")
                    batch: list[OrderEvent]
                    if item is not None and item.seq == last + 1:
                        batch = [item]
                    elif item is not None and item.seq > last:
                        batch = await self._events_after(order_id, last)  # a gap: fill it from the store
                    elif item is None:
                        try:
                            batch = await self._events_after(order_id, last)  # silence: ask the store
                        except Exception as exc:
                            if not is_unavailable(exc):
                                raise
                            continue  # only a safety net: a busy or absent store is asked again next silence
                    else:
                        continue
                    for event in batch:
                        yield pb.WatchOrderResponse(event=convert.event(event))
                        last = event.seq
                        if event.is_final:
                            return
        except HubUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; resume with from_seq={last}")

    async def GetOrder(
        self,
        request: pb.GetOrderRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse],
    ) -> pb.GetOrderResponse:
        order_id = parse_order_id(request.order_id)
        order = await self.store.get_order(order_id, DEFAULT_OWNER)
        if order is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"order {order_id} not found")
        return pb.GetOrderResponse(order=convert.order(order))

    async def ListOrders(
        self,
        request: pb.ListOrdersRequest,
        context: grpc.aio.ServicerContext[pb.ListOrdersRequest, pb.ListOrdersResponse],
    ) -> pb.ListOrdersResponse:
        limit = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        status = parse_status_filter(request.status)
        before = None
        if request.page_token:
            try:
                before = convert.parse_page_token(request.page_token)
            except ValueError:
                raise InvalidArgument("page_token", "is not a token this service returned") from None
        orders = await self.store.list_orders(DEFAULT_OWNER, status=status, limit=limit + 1, before=before)
        page, more = orders[:limit], len(orders) > limit
        return pb.ListOrdersResponse(
            orders=[convert.order(o) for o in page],
            next_page_token=convert.page_token(page[-1]) if more else "",
        )

    async def GetQuote(
        self,
        request: pb.GetQuoteRequest,
        context: grpc.aio.ServicerContext[pb.GetQuoteRequest, pb.GetQuoteResponse],
    ) -> pb.GetQuoteResponse:
        token_in, token_out = parse_pair(request.token_in, request.token_out)
        amount_in = parse_amount(request.amount, token_in)
        slippage = parse_slippage(request.slippage_bps)
        try:
            view = await self.venues.quote(token_in, token_out, amount_in)
        except PermanentFailure as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{exc.code}: {exc.message}")
        return pb.GetQuoteResponse(
            quotes=[convert.venue_quote(q) for q in view.quotes],
            route=convert.route(route_view(view.route, slippage)),
            unquoted_venues=[convert.venue_note(v.dex, v.reason) for v in view.unquoted],
        )
