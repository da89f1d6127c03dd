"""Prometheus metrics of the bridge, as ASGI middleware: HTTP requests by route, method and status, their
latency, and the WebSockets open now. Routes are labelled by their template (`/api/orders/{orderId}`), never
by the raw path, so a scan of random paths cannot grow the label set."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "orderengine_http_requests", "HTTP requests answered, by route, method and status.", ["route", "method", "status"]
)
LATENCY = Histogram(
    "orderengine_http_request_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OPEN_SOCKETS = Gauge("orderengine_websockets_open", "WebSockets open now, by route.", ["route"])
SOCKETS = Counter("orderengine_websockets", "WebSockets accepted, by route.", ["route"])


class BridgeMetrics:
    """Parameters:
    app(ASGIApp): the application.
    routes(sequence of BaseRoute): the app's route table, to name each request by its template.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                path = getattr(route, "path", "")
                return str(path) if path and path != "/{path:path}" else "other"
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            route = self._route(scope)
            SOCKETS.labels(route).inc()
            OPEN_SOCKETS.labels(route).inc()
            try:
                await self.app(scope, receive, send)
            finally:
                OPEN_SOCKETS.labels(route).dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        if route in ("", "/"):
            route = "page"
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            LATENCY.labels(route).observe(time.perf_counter() - started)
            REQUESTS.labels(route, scope["method"], str(status)).inc()
