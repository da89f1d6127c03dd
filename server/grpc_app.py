"""The gRPC server process: the engine (`workers.runtime.Engine`, built as a worker builds it), the WatchOrder hub,
and the faces on top: OrderService, health and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # public; grpc-stubs lacks it
from grpc_reflection.v1alpha import reflection

from client.options import SERVICE_NAME
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.auth import Authentication, Authenticator
from server.decoding import RequestDecoding
from server.errors import ErrorMapping, refusal_for
from server.grpc_metrics import GrpcMetrics, watch_hub
from server.grpc_tracing import GrpcTracing
from server.rate_limit import OrderRateLimit
from server.servicer import OrderService
from server.watch import EventHub
from server.watch_limit import WatchStreamLimit, server_options
from workers.account_store import AccountStore
from workers.config import Settings
from workers.runtime import Engine
from workers.telemetry.metrics import OrderMetrics
from workers.telemetry.otel import tracing_enabled
from workers.telemetry.tracing import EventSpans

log = logging.getLogger(__name__)

HEALTH_PROBE_INTERVAL_S = 2.0


@dataclass
class GrpcApp:
    server: grpc.aio.Server
    engine: Engine
    hub: EventHub
    health: Any  # grpc_health.v1.health.aio.HealthServicer
    port: int
    _probe: asyncio.Task[None] | None = None

    async def stop(self, grace: float = 5.0) -> None:
        """Stops accepting, gives calls `grace` seconds (streams end), then closes the connections."""
        await self.health.enter_graceful_shutdown()
        if self._probe:
            self._probe.cancel()
        await self.hub.close()  # open streams end with UNAVAILABLE: clients resume elsewhere
        await self.server.stop(grace)
        await self.engine.close()


async def start_grpc(settings: Settings, *, port: int | None = None) -> GrpcApp:
    assert settings.redis_url, "REDIS_URL must be set"
    # A request waits at most 2 s on Redis, so an outage is an UNAVAILABLE answer soon.
    engine = await Engine.open(settings, pool_size=20, redis_timeout_s=2)
    hub = EventHub(settings.redis_url)
    await hub.start()
    telemetry: list[grpc.aio.ServerInterceptor] = []  # type: ignore[type-arg]
    if settings.serve_metrics_port:  # kept only by a server that serves them (`make bench` measures the cost)
        engine.events.observe(OrderMetrics())
        watch_hub(hub)
        telemetry.append(GrpcMetrics())
    if tracing_enabled():
        engine.events.observe(EventSpans())
        telemetry.append(GrpcTracing())

    authenticator = Authenticator(
        AccountStore(engine.store.pool), required=settings.auth_required, cache_seconds=settings.auth_cache_seconds
    )
    # Authentication before the rest: a refused call never reaches the servicer, nor the interceptors behind it.
    server = grpc.aio.server(
        interceptors=[
            *telemetry,  # outermost: refusals are counted and traced too
            Authentication(authenticator, SERVICE_NAME, refusal_for),
            RequestDecoding(),
            ErrorMapping(),
            WatchStreamLimit(settings.watch_max_streams),
        ],
        options=server_options(settings),
    )
    rate_limit = OrderRateLimit(
        engine.redis, default_limit=settings.orders_per_minute, window_s=settings.rate_limit_window_seconds
    )
    pb_grpc.add_OrderServiceServicer_to_server(OrderService(engine, hub, rate_limit), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = f"{settings.grpc_host}:{settings.grpc_port if port is None else port}"
    credentials = server_credentials(settings)
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    app = GrpcApp(server=server, engine=engine, hub=hub, health=health, port=bound)
    app._probe = asyncio.create_task(_probe_health(app, settings))
    log.info(
        "gRPC OrderService listening on port %d (%s, AUTH=%s)",
        bound,
        "TLS" if credentials else "plaintext",
        settings.auth,
    )
    return app


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS-only when GRPC_TLS_CERT_FILE / GRPC_TLS_KEY_FILE are set (PEM files; the cert may carry its chain)."""
    if not settings.grpc_tls_cert_file or not settings.grpc_tls_key_file:
        return None
    key = Path(settings.grpc_tls_key_file).read_bytes()
    chain = Path(settings.grpc_tls_cert_file).read_bytes()
    return grpc.ssl_server_credentials([(key, chain)])


async def _probe_health(app: GrpcApp, settings: Settings) -> None:
    """Reports NOT_SERVING while PostgreSQL or Redis is unreachable, SERVING once both answer again."""
    assert settings.redis_url
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    last: int | None = None
    try:
        while True:
            try:
                await asyncio.wait_for(app.engine.store.ping(), 3)
                await redis.ping()
                status = health_pb2.HealthCheckResponse.SERVING
            except Exception:
                status = health_pb2.HealthCheckResponse.NOT_SERVING
            if status != last:
                for name in ("", SERVICE_NAME):
                    await app.health.set(name, status)
                last = status
            await asyncio.sleep(HEALTH_PROBE_INTERVAL_S)
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
