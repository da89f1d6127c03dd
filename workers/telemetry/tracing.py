"""OpenTelemetry traces of orders (`workers/telemetry/otel.py` turns tracing on or leaves it off).

One order is one trace: the server's ExecuteOrder span is its root, every Dramatiq message that advances the order
carries the context of the span that sent it (W3C trace context in the message's options, `trace`), and each
worker's span for a message is a child of it. Spans of in-flight messages are kept by order id, because the
order's async actor runs on Dramatiq's event-loop thread, not on the worker thread that opened the span.
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
from workers.telemetry import logs
from workers.telemetry.otel import tracer

log = logging.getLogger(__name__)

TRACE_OPTION = "trace"


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

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier and message.args:
            # Sent from the event loop (a delayed look, a retry): continue the span of the message being processed.
            span = self.span_for(str(message.args[0]))
            if span is not None:
                propagate.inject(carrier, context=trace.set_span_in_context(span))
        if carrier:
            message.options[TRACE_OPTION] = carrier

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        parent = propagate.extract(message.options.get(TRACE_OPTION) or {})
        order_id = str(message.args[0]) if message.args else ""
        span = tracer().start_span(
            message.actor_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.dramatiq.retries": int(message.options.get("retries", 0)),
                "order.id": order_id,
            },
        )
        with self._lock:
            self._spans[order_id] = span

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None, exception: Any = None
    ) -> None:
        order_id = str(message.args[0]) if message.args else ""
        with self._lock:
            span = self._spans.pop(order_id, None)
        if span is None:
            return
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
