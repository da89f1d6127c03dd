"""OpenTelemetry spans of the bridge (installed only when tracing is on): a SERVER span per HTTP request and per
WebSocket, current while the app answers, and the trace carried on to the gRPC service in `traceparent` metadata,
so an order placed from the page is one trace from the browser's request to its settlement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.telemetry.otel import tracer


def _template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return str(getattr(route, "path", "")) or "/"
    return "other"


class BridgeTracing:
    """Parameters:
    app(ASGIApp): the application.
    routes(sequence of BaseRoute): the route table, to name spans by route template.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        route = _template(self.routes, scope)
        method = scope.get("method", "WS")
        span = tracer().start_span(
            f"{method} {route}",
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route, "url.path": scope["path"]},
        )

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                span.set_attribute("http.response.status_code", message["status"])
                if message["status"] >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_status)
        finally:
            span.end()


class _Carry:
    """Adds the current trace context to a call's metadata."""

    @staticmethod
    def _details(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if not carrier:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *carrier.items())
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class TraceUnaryUnary(_Carry, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class TraceUnaryStream(_Carry, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


def trace_carriers() -> list[Any]:  # grpc-stubs leaves ClientInterceptor for casting
    return [TraceUnaryUnary(), TraceUnaryStream()]
