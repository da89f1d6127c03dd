"""Prometheus metrics of the gRPC server, in one interceptor: calls by method and status code, their latency,
the WatchOrder streams open now; and gauges of the event hub (orders watched, events waiting to be sent).

It goes first in the interceptor list, so it sees the status that ErrorMapping settled on.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from server.handlers import rewrap
from server.watch import EventHub

CALLS = Counter("orderengine_grpc_calls", "RPCs handled, by method and status code.", ["method", "code"])
LATENCY = Histogram(
    "orderengine_grpc_call_seconds",
    "Time to answer a unary RPC, or the life of a stream, by method.",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
OPEN_STREAMS = Gauge("orderengine_grpc_streams_open", "Server streams open now, by method.", ["method"])
HUB_ORDERS = Gauge("orderengine_event_hub_orders", "Orders with at least one open WatchOrder stream here.")
HUB_BACKLOG = Gauge("orderengine_event_hub_backlog", "Events heard from Redis not yet sent on their streams.")


def watch_hub(hub: EventHub) -> None:
    HUB_ORDERS.set_function(lambda: hub.watched_orders)
    HUB_BACKLOG.set_function(lambda: hub.backlog)


def _code(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio keeps the code it was given: some paths give the enum's integer
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))
    if exc is None:
        return "OK"
    return "CANCELLED" if context.cancelled() else "UNKNOWN"


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class GrpcMetrics(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = _short(handler_call_details.method)
        return rewrap(  # type: ignore[return-value]
            await continuation(handler_call_details), partial(_unary, method), partial(_stream, method)
        )


def _unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            LATENCY.labels(method).observe(time.perf_counter() - started)
            CALLS.labels(method, _code(context, failure)).inc()

    return handler


def _stream(method: str, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.perf_counter()
        failure: BaseException | None = None
        OPEN_STREAMS.labels(method).inc()
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as exc:
            failure = exc
            raise
        finally:
            OPEN_STREAMS.labels(method).dec()
            LATENCY.labels(method).observe(time.perf_counter() - started)
            CALLS.labels(method, _code(context, failure)).inc()

    return handler
