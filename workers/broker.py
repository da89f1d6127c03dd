"""The Dramatiq broker: Redis, with the middleware stack that gives order actors their behaviour.

The one module that knows which broker it is: everything else takes a `dramatiq.Broker`.
"""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from workers.config import Settings
from workers.telemetry.otel import tracing_enabled
from workers.telemetry.tracing import MessageTracing

# Delivery retries (PostgreSQL briefly down, a bug): invisible to watchers and not counted as order attempts.
DELIVERY_MAX_RETRIES = 30
DELIVERY_MIN_BACKOFF_MS = 500
DELIVERY_MAX_BACKOFF_MS = 15_000


def build_broker(settings: Settings, *, worker_middleware: list[dramatiq.Middleware] | None = None) -> dramatiq.Broker:
    """A broker for the settings' Redis. Workers add their own middleware; the server only sends."""
    middleware: list[dramatiq.Middleware] = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=DELIVERY_MAX_RETRIES,
            min_backoff=DELIVERY_MIN_BACKOFF_MS,
            max_backoff=DELIVERY_MAX_BACKOFF_MS,
        ),
        AsyncIO(),
        *([MessageTracing()] if tracing_enabled() else []),
        *(worker_middleware or []),
    ]
    assert settings.redis_url, "REDIS_URL is not set"
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=client,
        middleware=middleware,
        namespace="orderengine",
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        # Messages of orders that failed for good; the order's own history is in PostgreSQL.
        dead_message_ttl=3_600_000,
    )
