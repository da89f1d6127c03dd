"""What a worker does for an order: look at where it is, take it one step further, repeat.

Each step is a guarded transition (`OrderStore.transition` with a lifecycle event), so a redelivered or duplicated
message finds the order already past that step and does nothing; the store publishes and logs each event it commits
(`workers/events.py`). Failures are raised, never turned into events here: `middleware/attempts.py` decides between
a retry and the one `failed` event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from workers import chain, triggers
from workers.chain import Submission
from workers.domain import (
    RESTING_ORDER_TYPES,
    ErrorCode,
    LifecycleEvent,
    LimitNotReached,
    OrderFailure,
    OrderStatus,
    PermanentFailure,
    TransientFailure,
)
from workers.limits import limit_min_out
from workers.market import (
    InsufficientLiquidityError,
    NoRouteError,
    Pool,
    execute,
    format_amount,
    resolve_token,
    route_from_json,
)
from workers.models import EventDetails, Order
from workers.price_impact import check_price_impact
from workers.runtime import Engine
from workers.store import Settlement
from workers.views import leg_view, main_dex, price, route_view

log = logging.getLogger(__name__)


async def advance(engine: Engine, order_id: str) -> None:
    found = await engine.store.order_at_work(order_id)
    if found is None or found[0].status.is_final:
        return
    order, sub = found
    try:
        await _drive(engine, order, sub)
    except OrderFailure as failure:
        failure.attempt = order.attempt
        raise
    except LimitNotReached as missed:
        # Guarded by the attempt: a stale message of an earlier attempt reopens nothing.
        reopened = await engine.store.reopen(order.id, order.attempt, missed.to_error())
        if reopened is not None:
            # As after resting: a pool move that committed just before the reopen may have found no open order
            # and told no trigger engine (`OrderStore._any_open`), so the order looks at the pools itself now.
            await triggers.check_now(
                engine, replace(order, status=reopened.status, attempt=reopened.attempt, updated_at=reopened.time)
            )


async def advance_many(engine: Engine, order_ids: Sequence[str]) -> None:
    """`advance` for each order, side by side, so their reads and writes share the store's batches. An order that
    fails is handed to a message of its own, due now: its failure is its own, and is decided where every
    failure is (`middleware/attempts.py`), when that message fails the same way."""
    results = await asyncio.gather(*(advance(engine, order_id) for order_id in order_ids), return_exceptions=True)
    for order_id, result in zip(order_ids, results, strict=True):
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException):
            log.info("order %s: %s; advanced again by itself", order_id, result, extra={"order_id": order_id})
            await engine.queue.enqueue_async(order_id)


def first_delay_ms(engine: Engine, order: Order) -> int:
    """When a new order's first message is due. A market order is routed once the venues have answered the quote
    request it made when it was placed, so under venue latency its first message comes then, and START, ROUTE, the
    submission and SUBMIT commit together, as at zero latency: no message (and no transaction) is spent on
    `routing` alone. The order stays `pending` (queued, its quotes on their way) until then."""
    if order.order_type in RESTING_ORDER_TYPES:
        return 0
    return engine.venues.quote_wait_ms(order.id, order.attempt, asked_at=order.updated_at)


async def _drive(engine: Engine, order: Order, sub: Submission | None) -> None:
    """`sub`: the order's transaction in the mempool, read with the order (None before it is submitted)."""
    if order.status is OrderStatus.PENDING and order.order_type in RESTING_ORDER_TYPES:
        await _rest(engine, order)
        return
    if order.status is OrderStatus.OPEN:
        return  # waiting: only the trigger engine moves it on
    if order.status in (OrderStatus.PENDING, OrderStatus.ROUTING):
        # The venues answer after their network latency, counted from when the order asked (placed, triggered or
        # retried): a message that comes early is delayed until then, so no thread waits. Once the quote is in,
        # (START,) ROUTE, the submission and SUBMIT complete in this message and commit together.
        wait_ms = engine.venues.quote_wait_ms(order.id, order.attempt, asked_at=order.updated_at)
        if wait_ms > 0:
            await engine.queue.enqueue_async(order.id, wait_ms)
            return
        quoted = await _route_and_submit(engine, order)
        if quoted is not None:
            await _check_landing(engine, *quoted)
        return
    if order.status is OrderStatus.BUILDING:  # routed by a release that committed ROUTE and SUBMIT apart
        submitted = await _submit(engine, order)
        if submitted is None:
            return
        order, sub = submitted
    await _check_landing(engine, order, sub)


async def _rest(engine: Engine, order: Order) -> None:
    """pending -> open; then the expiry's delayed message, and one look at the pools as they are now."""
    rested = await engine.store.transition(order.id, LifecycleEvent.REST, attempt=order.attempt)
    if rested is None:
        return
    if order.expires_at is not None:
        left_ms = int((order.expires_at - datetime.now(UTC)).total_seconds() * 1000)
        await engine.queue.expire_async(order.id, max(left_ms, 1))
    await triggers.check_now(engine, replace(order, status=rested.status))


def _limit_min(order: Order) -> int | None:
    if order.limit_price is None:
        return None
    return limit_min_out(
        order.amount_in, resolve_token(order.token_in), resolve_token(order.token_out), order.limit_price
    )


async def _route_and_submit(engine: Engine, order: Order) -> tuple[Order, Submission] | None:
    """pending (or routing) -> submitted in one transaction, once the quote is in (at once, or after the
    venues' latency): the route is chosen first, then START, ROUTE, the submission and SUBMIT commit together
    (`OrderStore.route_and_submit`). A crash before the commit leaves the order where it was, and the redelivered
    message starts over; after it, the order is `submitted` and the message only looks at its landing."""
    try:
        details, raw = await _choose_route(engine, order)
    except Exception:
        # A failure is recorded from `routing`, as when the steps were apart (a retry starts from there).
        if order.status is OrderStatus.PENDING and (
            await engine.store.transition(order.id, LifecycleEvent.START, attempt=order.attempt) is None
        ):
            return None  # another delivery took it up: that one decides
        raise
    settings = engine.settings
    signature = chain.signature_for(settings.market_seed, order.id, order.attempt)
    planned = chain.plan_submission(
        engine.chain, settings.market_seed, settings.market_failure_rate, signature, datetime.now(UTC)
    )
    done = await engine.store.route_and_submit(
        order,
        start=order.status is OrderStatus.PENDING,
        route_details=details,
        route=raw,
        submission=planned,
        submit_details=EventDetails(dex=details.dex, tx_signature=signature),
    )
    if done is None:
        return None
    events, sub = done
    last = events[-1]
    return replace(order, status=last.status, dex=details.dex, route=raw, tx_signature=signature), sub


async def _choose_route(engine: Engine, order: Order) -> tuple[EventDetails, dict[str, Any]]:
    """The venues' best route for the order now, checked against its price impact and limit: the ROUTE event's
    details and the route as stored."""
    token_in, token_out = await engine.venues.tokens(order.token_in, order.token_out)
    route, skipped = await engine.venues.route_order(
        token_in, token_out, order.amount_in, order=(order.id, order.attempt)
    )
    check_price_impact(route.price_impact_bps, order.max_price_impact_bps, "routed now,")
    limit_min = _limit_min(order)
    if limit_min is not None and route.amount_out < limit_min:
        raise LimitNotReached(
            f"the best route now returns {format_amount(route.amount_out, token_out)} {token_out.symbol}, below "
            f"the limit's {format_amount(limit_min, token_out)} {token_out.symbol}: the price moved back"
        )
    instructions = chain.instructions_for(token_in.native, token_out.native, len(route.legs))
    dex = main_dex(route)
    details = EventDetails(
        dex=dex,
        route=route_view(route, order.slippage_bps),
        instructions=instructions,
        skipped_venues=skipped,
    )
    return details, route.to_json()


async def _submit(engine: Engine, order: Order) -> tuple[Order, Submission] | None:
    settings = engine.settings
    signature = chain.signature_for(settings.market_seed, order.id, order.attempt)
    planned = chain.plan_submission(
        engine.chain, settings.market_seed, settings.market_failure_rate, signature, datetime.now(UTC)
    )
    sub = await engine.store.record_submission(order.id, order.attempt, planned)
    details = EventDetails(dex=order.dex, tx_signature=signature)
    event = await engine.store.transition(order.id, LifecycleEvent.SUBMIT, details, attempt=order.attempt)
    if event is None:
        return None
    return replace(order, status=event.status, tx_signature=signature), sub


async def _check_landing(engine: Engine, order: Order, sub: Submission | None) -> None:
    """Settles a transaction that has landed, retries one that expired, or looks again when either is due."""
    assert order.tx_signature is not None
    now = datetime.now(UTC)
    if sub is None:  # the mempool lost it (cannot happen with PostgreSQL as the ledger, but be explicit)
        raise TransientFailure(ErrorCode.TX_EXPIRED, f"transaction {order.tx_signature[:12]}… is unknown")
    if sub.lands_at is not None and now >= sub.lands_at:
        await _settle(engine, order)
    elif sub.lands_at is None and now >= sub.expires_at:
        raise TransientFailure(
            ErrorCode.TX_EXPIRED,
            f"transaction {sub.signature[:12]}… was not confirmed before its blockhash expired",
        )
    else:  # with the other orders of this process due then (`workers.revisits`)
        await engine.revisits.at(order.id, sub.lands_at or sub.expires_at)


async def _settle(engine: Engine, order: Order) -> None:
    assert order.route is not None and order.tx_signature is not None
    await engine.venues.tokens(order.token_in, order.token_out)  # this process may not have heard of a launch yet
    route = route_from_json(order.route)
    min_out = route.min_amount_out(order.slippage_bps)
    limit_min = _limit_min(order)
    resting = order.order_type in RESTING_ORDER_TYPES

    def format_out(amount: int) -> str:
        return format_amount(amount, route.token_out)

    def decide(pools: dict[str, Pool]) -> Settlement:
        try:
            done = execute(route, pools)
        except (InsufficientLiquidityError, NoRouteError) as exc:
            if resting:
                raise LimitNotReached(f"the pools moved so far that the swap can no longer fill: {exc}") from exc
            raise PermanentFailure(
                ErrorCode.SLIPPAGE_EXCEEDED, f"the pools moved so far that the swap can no longer fill: {exc}"
            ) from exc
        # The pools may have moved since routing: the impact is measured again on the swap as it would land.
        check_price_impact(done.price_impact_bps, order.max_price_impact_bps, "settled now,")
        if limit_min is not None and done.amount_out < limit_min:
            raise LimitNotReached(
                f"the swap would return {format_out(done.amount_out)} {route.token_out.symbol}, below the limit's "
                f"{format_out(limit_min)} {route.token_out.symbol}: the price moved back before it landed"
            )
        if done.amount_out < min_out:
            if resting:
                # A resting order waits for its price rather than fail on a move that may reverse.
                raise LimitNotReached(
                    f"the swap would return {format_out(done.amount_out)} {route.token_out.symbol}, below the "
                    f"minimum {format_out(min_out)} {route.token_out.symbol} ({order.slippage_bps} bps slippage)"
                )
            raise PermanentFailure(
                ErrorCode.SLIPPAGE_EXCEEDED,
                f"the swap would return {format_out(done.amount_out)} {route.token_out.symbol}, below the "
                f"minimum {format_out(min_out)} {route.token_out.symbol} ({order.slippage_bps} bps slippage)",
            )
        return Settlement(
            amount_out=done.amount_out,
            executed_price=price(route.amount_in, route.token_in, done.amount_out, route.token_out),
            amount_out_text=format_out(done.amount_out),
            legs=[leg_view(leg) for leg in done.legs],
            pools_after=done.pools_after,
        )

    await engine.store.settle(
        order, order.tx_signature, [leg.pool_id for leg in route.legs], decide, engine.venues.remember
    )
