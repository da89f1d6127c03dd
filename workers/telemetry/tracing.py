"""OpenTelemetry traces of orders (`workers/telemetry/otel.py` turns tracing on or leaves it off).

One order is one trace: the server's ExecuteOrder span is its root, every Dramatiq message that advances the order
carries the context of the span that sent it (W3C trace context in the message's options, `trace`), and each
worker's span for a message is a child of it. Spans of in-flight messages are kept by order id, because the
order's async actor runs on Dramatiq's event-loop thread, not on the worker thread that opened the span.
A message for several orders (`advance_orders`, `workers/revisits.py`) carries each order's context
(`order_traces`) and gets one span per order, each in its order's trace.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from workers.models import OrderEvent
from workers.queue import BATCH_ACTOR_NAME
from workers.telemetry import logs
from workers.telemetry.otel import tracer

log = logging.getLogger(__name__)

TRACE_OPTION = "trace"
ORDER_TRACES_OPTION = "order_traces"


def _order_ids(message: dramatiq.Message[Any] | MessageProxy) -> list[str]:
    if message.actor_name == BATCH_ACTOR_NAME and message.args:
        return [str(order_id) for order_id in message.args[0]]
    return [str(message.args[0]) if message.args else ""]


def order_attributes(event: OrderEvent) -> dict[str, Any]:
    attributes: dict[str, Any] = {"order.id": event.order_id, "order.stage": event.status.value}
    attributes["order.attempt"] = event.attempt
    if event.details.dex:
        attributes["order.venue"] = event.details.dex
    if event.details.error:
        attributes["order.error"] = event.details.error.code
    return attributes


class MessageTracing(dramatiq.Middleware):
    """Carries the trace in every message sent, and gives every message processed a span of its own."""

    def __init__(self) -> None:
        self._spans: dict[str, Span] = {}  # by order id: the span of the message advancing it in this process
        self._lock = threading.Lock()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        from workers import runtime  # the runtime builds brokers, so it is imported only once one runs

        runtime.current().events.observe(EventSpans(self))
        logs.order_span = self.span_for

    def span_for(self, order_id: str) -> Span | None:
        with self._lock:
            return self._spans.get(order_id)

    def _carrier(self, order_id: str) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier:
            # Sent from the event loop (a delayed look, a retry): continue the span of the message being processed.
            span = self.span_for(order_id)
            if span is not None:
                propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if message.actor_name == BATCH_ACTOR_NAME:
            # Sent for orders whose messages are in flight here: each continues its own order's span. Kept when
            # Dramatiq enqueues the message again once it is due (no order's span is in flight then).
            carriers: dict[str, dict[str, str]] = dict(message.options.get(ORDER_TRACES_OPTION) or {})
            for order_id in _order_ids(message):
                span = self.span_for(order_id)
                if span is not None:
                    carriers[order_id] = {}
                    propagate.inject(carriers[order_id], context=trace.set_span_in_context(span))
            if carriers:
                message.options[ORDER_TRACES_OPTION] = carriers
            return
        carrier = self._carrier(str(message.args[0])) if message.args else {}
        if carrier:
            message.options[TRACE_OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        order_ids = _order_ids(message)
        carriers = message.options.get(ORDER_TRACES_OPTION) or {}
        for order_id in order_ids:
            carrier = carriers.get(order_id) if order_id in carriers else message.options.get(TRACE_OPTION)
            attributes: dict[str, Any] = {
                "messaging.system": "dramatiq",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.dramatiq.retries": int(message.options.get("retries", 0)),
                "order.id": order_id,
            }
            if message.actor_name == BATCH_ACTOR_NAME:
                attributes["messaging.batch.message_count"] = len(order_ids)
            span = tracer().start_span(
                message.actor_name,
                context=propagate.extract(carrier or {}),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            )
            with self._lock:
                self._spans[order_id] = span

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        for order_id in _order_ids(message):
            with self._lock:
                span = self._spans.pop(order_id, None)
            if span is None:
                continue
            if exception is not None:
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, str(exception)))
            span.end()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


class EventSpans:
    """An EventSink observer: each committed event becomes an event on the span advancing its order (the message's
    in a worker, the RPC's in the server), which also takes the order's latest stage, attempt and venue."""

    def __init__(self, messages: MessageTracing | None = None) -> None:
        self._messages = messages

    def __call__(self, event: OrderEvent) -> None:
        span = self._messages.span_for(event.order_id) if self._messages is not None else None
        if span is None:
            span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes = order_attributes(event)
        span.set_attributes(attributes)
        span.add_event(f"order {event.status.value}", attributes={"order.seq": event.seq, **attributes})
