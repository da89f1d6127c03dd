"""The gRPC server process: OrderService, health, reflection, and the connections they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.errors import ErrorMapping
from server.servicer import OrderService
from server.watch import EventHub
from server.watch_limit import WatchStreamLimit, server_options
from workers.broker import build_broker
from workers.config import Settings
from workers.publisher import EventPublisher
from workers.queue import OrderQueue
from workers.redis_client import async_redis
from workers.store import OrderStore
from workers.venues import Venues

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OrderService"].full_name
HEALTH_PROBE_INTERVAL_S = 2.0


@dataclass
class GrpcApp:
    server: grpc.aio.Server
    store: OrderStore
    hub: EventHub
    health: HealthServicer
    redis: aioredis.Redis
    port: int
    _probe: asyncio.Task[None] | None = None

    async def stop(self, grace: float = 5.0) -> None:
        """Stops accepting, gives calls `grace` seconds (streams end), then closes the connections."""
        await self.health.enter_graceful_shutdown()
        if self._probe:
            self._probe.cancel()
        await self.hub.close()  # open streams end with UNAVAILABLE: clients resume elsewhere
        await self.server.stop(grace)
        await self.redis.aclose()
        await self.store.close()


async def start_grpc(settings: Settings, *, port: int | None = None) -> GrpcApp:
    assert settings.database_url and settings.redis_url, "DATABASE_URL and REDIS_URL must be set"
    store = await OrderStore.open(settings.database_url, max_size=20)
    hub = EventHub(settings.redis_url)
    await hub.start()
    venues = Venues(
        store,
        latency=settings.market_latency,
        failure_rate=settings.market_failure_rate,
        seed=settings.market_seed,
    )

    server = grpc.aio.server(
        interceptors=[ErrorMapping(), WatchStreamLimit(settings.watch_max_streams)], options=server_options(settings)
    )
    redis = async_redis(settings.redis_url, socket_timeout=2)
    publisher = EventPublisher(redis)
    queue = OrderQueue(build_broker(settings), redis)
    pb_grpc.add_OrderServiceServicer_to_server(OrderService(store, hub, queue, venues, publisher), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    bound = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port if port is None else port}")
    await server.start()
    app = GrpcApp(server=server, store=store, hub=hub, health=health, redis=redis, port=bound)
    app._probe = asyncio.create_task(_probe_health(app, settings))
    log.info("gRPC OrderService listening on port %d", bound)
    return app


async def _probe_health(app: GrpcApp, settings: Settings) -> None:
    """Reports NOT_SERVING while PostgreSQL or Redis is unreachable, SERVING once both answer again."""
    assert settings.redis_url
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    last: int | None = None
    try:
        while True:
            try:
                await asyncio.wait_for(app.store.ping(), 3)
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
