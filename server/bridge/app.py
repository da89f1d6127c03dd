"""The bridge application: its whole HTTP and WebSocket surface in one route table.

The bridge is a client of the gRPC OrderService and nothing else: one channel per process, opened when the app
starts and closed when it stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from client.async_client import AsyncOrderClient
from client.options import ReconnectPolicy
from server.bridge import grpc_web, http_api, live_metrics, openapi, sockets
from server.bridge.credentials import ApiKeys
from server.bridge.metrics import BridgeMetrics
from server.bridge.tracing import BridgeTracing, trace_carriers
from workers.telemetry.otel import tracing_enabled

STATIC_DIR = Path(__file__).parent / "static"

# A watch that loses the service keeps retrying this long before the socket is closed with 1013; the page
# then reconnects with fromSeq on its own.
WATCH_RECONNECT = ReconnectPolicy(initial_backoff_s=0.1, max_backoff_s=1.0, give_up_after_s=10.0)


def create_app(
    grpc_target: str,
    cors_origins: list[str],
    metrics_targets: Sequence[str] = (),
    *,
    metrics: bool = False,
    auth_required: bool = True,
    grpc_tls: bool = False,
    grpc_ca_file: str | None = None,
) -> Starlette:
    """The bridge for the OrderService at `grpc_target`, answering CORS requests from `cors_origins`; its
    /api/metrics sums the `/metrics` URLs of `metrics_targets` for the page's charts; `metrics` keeps the
    bridge's own (served by the caller).

    `auth_required`: order API requests without a key are refused here (401 / close 4401); with a key, or when
    keys are optional, the service judges the key. `grpc_tls` / `grpc_ca_file`: reach the service over TLS.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        carriers = trace_carriers() if traced else []
        app.state.metrics_targets = list(metrics_targets)
        app.state.client = AsyncOrderClient(
            grpc_target, reconnect=WATCH_RECONNECT, interceptors=carriers, tls=grpc_tls, ca_file=grpc_ca_file
        )
        try:
            yield
        finally:
            await app.state.client.close()

    routes = [
        Route("/health", http_api.health, methods=["GET"]),
        Route("/api/orders/execute", http_api.execute_order, methods=["POST"]),
        WebSocketRoute("/api/orders/execute", sockets.execute_and_watch),
        Route("/api/orders", http_api.list_orders, methods=["GET"]),
        Route("/api/orders/{orderId}", http_api.get_order, methods=["GET"]),
        Route("/api/orders/{orderId}/cancel", http_api.cancel_order, methods=["POST"]),
        Route("/api/quote", http_api.get_quote, methods=["GET"]),
        Route("/api/metrics", live_metrics.live_metrics, methods=["GET"]),
        WebSocketRoute("/ws/orders/{orderId}", sockets.watch_order),
        Route("/openapi.json", openapi.description, methods=["GET"]),
        Route(grpc_web.PATH, grpc_web.call, methods=["POST"]),  # /orderengine.v1.OrderService/{method}
        WebSocketRoute("/{path:path}", sockets.no_such_socket),
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page"),
    ]
    traced = tracing_enabled()
    middleware = [
        *([Middleware(BridgeMetrics, routes=routes)] if metrics else []),
        *([Middleware(BridgeTracing, routes=routes)] if traced else []),
        Middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "authorization", *grpc_web.CORS_REQUEST_HEADERS],
            expose_headers=grpc_web.CORS_EXPOSED_HEADERS,
            max_age=600,
        ),
        # Inside CORS, so a preflight (which carries no key) is answered before keys are asked for.
        Middleware(ApiKeys, required=auth_required),
    ]
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers=http_api.EXCEPTION_HANDLERS, lifespan=lifespan
    )
