"""OpenTelemetry spans of the gRPC server, in one interceptor (installed only when tracing is on): a SERVER span
per call, continuing the caller's trace from the `traceparent` metadata, current while the handler runs, so
what the handler enqueues carries it. ExecuteOrder's span is the root of its order's trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from server.handlers import rewrap
from workers.telemetry.otel import tracer


class GrpcTracing(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        return rewrap(  # type: ignore[return-value]
            await continuation(handler_call_details), partial(_unary, method), partial(_stream, method)
        )


def _start(method: str, context: grpc.aio.ServicerContext[Any, Any]) -> trace.Span:
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    service, _, name = method.strip("/").partition("/")
    return tracer().start_span(
        method.strip("/"),
        context=propagate.extract(metadata),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )


def _finish(span: trace.Span, context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> None:
    code = context.code()
    name = code.name if isinstance(code, grpc.StatusCode) else ("OK" if exc is None and code in (None, 0) else None)
    if name is None:
        name = "UNKNOWN" if exc is not None else str(code)
    span.set_attribute("rpc.grpc.status_code", name)
    if name != "OK":
        span.set_status(Status(StatusCode.ERROR, name))


def _unary(method: str, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        span = _start(method, context)
        failure: BaseException | None = None
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                response = await behavior(request, context)
            order_id = getattr(response, "order_id", "")
            if order_id:
                span.set_attribute("order.id", order_id)
            return response
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _finish(span, context, failure)
            span.end()

    return handler


def _stream(method: str, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        span = _start(method, context)
        order_id = getattr(request, "order_id", "")
        if order_id:
            span.set_attribute("order.id", order_id)
        failure: BaseException | None = None
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                async for response in behavior(request, context):
                    yield response
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _finish(span, context, failure)
            span.end()

    return handler
