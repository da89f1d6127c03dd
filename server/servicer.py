"""OrderService: translates protobuf to domain calls and back. Decisions live in `workers`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server import convert
from server.auth import current_account
from server.errors import QueueUnavailable
from server.rate_limit import OrderRateLimit
from server.validation import (
    InvalidArgument,
    parse_amount,
    parse_execute,
    parse_order_id,
    parse_page_size,
    parse_pair,
    parse_slippage,
    parse_status_filter,
)
from server.watch import EventHub, GatedReads, follow
from workers.domain import RESTING_ORDER_TYPES
from workers.market import UnknownTokenError, resolve_token
from workers.models import Order
from workers.pipeline import first_delay_ms
from workers.price_impact import check_price_impact
from workers.publisher import PublishedEvent
from workers.runtime import Engine
from workers.store import OrderNotFound
from workers.views import route_view

log = logging.getLogger(__name__)

# How often at most a request naming an unknown token makes this process re-read the launched tokens.
TOKENS_MAX_AGE_S = 0.5


class OrderService(pb_grpc.OrderServiceServicer):
    def __init__(self, engine: Engine, hub: EventHub, rate_limit: OrderRateLimit) -> None:
        self.engine = engine
        self.hub = hub
        self.rate_limit = rate_limit
        self._watch_reads: GatedReads | None = None

    @property
    def watch_reads(self) -> GatedReads:
        """The store as streams read it (made on first use, so nothing touches the store before a request does)."""
        if self._watch_reads is None:
            self._watch_reads = GatedReads(self.engine.store)
        return self._watch_reads

    async def ExecuteOrder(
        self,
        request: pb.ExecuteOrderRequest,
        context: grpc.aio.ServicerContext[pb.ExecuteOrderRequest, pb.ExecuteOrderResponse],
    ) -> pb.ExecuteOrderResponse:
        account = current_account()
        try:
            new = parse_execute(request, owner_id=account.id)
        except InvalidArgument as exc:
            if not exc.problem.startswith("unknown token"):
                raise
            # Perhaps a token launched since this process last looked: learn the new ones, then judge again.
            await self.engine.venues.learn_tokens(max_age_s=TOKENS_MAX_AGE_S)
            new = parse_execute(request, owner_id=account.id)
        await self.rate_limit.acquire(account)  # after validation (bad input is not an order), before any write
        if new.order_type not in RESTING_ORDER_TYPES:
            # A market order executes on the market as it is now; a resting one on the market that fires it, where
            # the pipeline checks the impact when routing and settling (a sniper's pool may not even exist yet).
            impact = await self.engine.venues.price_impact_bps(
                resolve_token(new.token_in), resolve_token(new.token_out), new.amount_in
            )
            if impact is not None:  # refused before anything is stored
                check_price_impact(impact, new.max_price_impact_bps, "quoted now,")
        order, pending = await self.engine.store.create_order(new)
        if pending is not None:
            try:
                await self.engine.queue.enqueue_async(order.id, first_delay_ms(self.engine, order))
            except Exception as exc:
                # Leave nothing half-written: a stored order that no worker will hear of until the reconciler
                # runs would execute after its client was told it failed.
                await self.engine.store.forget_unstarted(order.id)
                log.warning("order %s: not queued (%s), forgotten", order.id, exc, extra={"order_id": order.id})
                broker = self.engine.queue.broker_name
                raise QueueUnavailable(f"the order queue ({broker}) is unavailable: {exc}") from exc
        return pb.ExecuteOrderResponse(order_id=order.id)

    async def WatchOrder(
        self,
        request: pb.WatchOrderRequest,
        context: grpc.aio.ServicerContext[pb.WatchOrderRequest, pb.WatchOrderResponse],
    ) -> AsyncIterator[pb.WatchOrderResponse]:
        order_id = parse_order_id(request.order_id)
        owner = current_account().id
        async with aclosing(follow(self.watch_reads, self.hub, order_id, request.from_seq, owner)) as events:
            async for event in events:
                # A live event arrives as its message, built once where it was committed; a stored one is built here.
                message = event.message if isinstance(event, PublishedEvent) else convert.event(event)
                yield pb.WatchOrderResponse(event=message)

    async def GetOrder(
        self,
        request: pb.GetOrderRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse],
    ) -> pb.GetOrderResponse:
        order_id = parse_order_id(request.order_id)
        order = await self.engine.store.get_order(order_id, current_account().id)
        if order is None:
            raise OrderNotFound(order_id)
        return pb.GetOrderResponse(order=(await self._orders([order]))[0])

    async def ListOrders(
        self,
        request: pb.ListOrdersRequest,
        context: grpc.aio.ServicerContext[pb.ListOrdersRequest, pb.ListOrdersResponse],
    ) -> pb.ListOrdersResponse:
        limit = parse_page_size(request.page_size)
        status = parse_status_filter(request.status)
        before = None
        if request.page_token:
            try:
                before = convert.parse_page_token(request.page_token)
            except ValueError:
                raise InvalidArgument("page_token", "is not a token this service returned") from None
        orders = await self.engine.store.list_orders(
            current_account().id, status=status, limit=limit + 1, before=before
        )
        page, more = orders[:limit], len(orders) > limit
        return pb.ListOrdersResponse(
            orders=await self._orders(page),
            next_page_token=convert.page_token(page[-1]) if more else "",
        )

    async def CancelOrder(
        self,
        request: pb.CancelOrderRequest,
        context: grpc.aio.ServicerContext[pb.CancelOrderRequest, pb.CancelOrderResponse],
    ) -> pb.CancelOrderResponse:
        order_id = parse_order_id(request.order_id)
        order = await self.engine.store.cancel(order_id, current_account().id)  # only its owner may cancel
        return pb.CancelOrderResponse(order=(await self._orders([order]))[0])

    async def _orders(self, orders: list[Order]) -> list[pb.Order]:
        try:
            return [convert.order(o) for o in orders]
        except UnknownTokenError:  # a token launched since this process last looked
            await self.engine.venues.learn_tokens(max_age_s=TOKENS_MAX_AGE_S)
            return [convert.order(o) for o in orders]

    async def GetQuote(
        self,
        request: pb.GetQuoteRequest,
        context: grpc.aio.ServicerContext[pb.GetQuoteRequest, pb.GetQuoteResponse],
    ) -> pb.GetQuoteResponse:
        token_in, token_out = parse_pair(request.token_in, request.token_out)
        amount_in = parse_amount(request.amount, token_in)
        slippage = parse_slippage(request.slippage_bps)
        view = await self.engine.venues.quote(token_in, token_out, amount_in)  # PermanentFailure: FAILED_PRECONDITION
        return pb.GetQuoteResponse(
            quotes=[convert.venue_quote(q) for q in view.quotes],
            route=convert.route(route_view(view.route, slippage)),
            unquoted_venues=[convert.venue_note(v.dex, v.reason) for v in view.unquoted],
        )
