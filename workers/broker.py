"""The Dramatiq broker: Redis or RabbitMQ (`BROKER_URL`), with the middleware stack that gives order actors their
behaviour.

The one module that knows which broker it is: everything else takes a `dramatiq.Broker`. Both brokers give the
engine what it relies on: delayed messages (Redis keeps them in `orders.DQ`; RabbitMQ in the durable `orders.DQ`
queue, held unacked by a worker until due), a dead worker's unacked messages delivered again (Redis after
`BROKER_HEARTBEAT_TIMEOUT_MS` without the worker's heartbeat; RabbitMQ as soon as its connection closes, or after
the same heartbeat timeout when its host drops off the network), and an enqueue that returns only once the broker
holds the message (Redis: one script call; RabbitMQ: publisher confirms).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
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
# Messages of orders that failed for good; the order's own history is in PostgreSQL.
DEAD_MESSAGE_TTL_MS = 3_600_000

AMQP_SCHEMES = ("amqp", "amqps")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def broker_url(settings: Settings) -> str:
    """BROKER_URL, or REDIS_URL when it is not set (one Redis for everything is the default)."""
    url = settings.broker_url or settings.redis_url
    if not url:
        raise ValueError("neither BROKER_URL nor REDIS_URL is set")
    return url


def broker_kind(url: str) -> str:
    """'Redis' or 'RabbitMQ' for a broker URL; a clear error naming BROKER_URL for anything else."""
    scheme = urlsplit(url).scheme
    if scheme in REDIS_SCHEMES:
        return "Redis"
    if scheme in AMQP_SCHEMES:
        return "RabbitMQ"
    raise ValueError(f"BROKER_URL: unknown scheme {scheme!r}; use redis://, rediss://, unix:// or amqp://, amqps://")


def build_broker(settings: Settings, *, worker_middleware: list[dramatiq.Middleware] | None = None) -> dramatiq.Broker:
    """A broker for the settings' BROKER_URL (default REDIS_URL). Workers add their own middleware; the server
    only sends."""
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
    url = broker_url(settings)
    if broker_kind(url) == "RabbitMQ":
        return RabbitmqBroker(
            url=amqp_url(url, heartbeat_s=max(1, settings.broker_heartbeat_timeout_ms // 1000)),
            middleware=middleware,
            # Without confirms a publish into a connection that died (a host cut off) is lost in silence; with
            # them `enqueue` returns once RabbitMQ has the message, as the Redis script's reply says for Redis.
            confirm_delivery=True,
        )
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=client,
        middleware=middleware,
        namespace="orderengine",
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
        dead_message_ttl=DEAD_MESSAGE_TTL_MS,
    )


# pika's connection parameters (URL query keys) the engine needs; a URL that sets one keeps its own value.
#   heartbeat: how soon either side gives up on a silent peer, so a worker host that drops off the network has its
#     unacked messages delivered again (BROKER_HEARTBEAT_TIMEOUT_MS, as for Redis).
#   socket_timeout, stack_timeout: a connect to an unreachable broker fails in seconds; Dramatiq's enqueue
#     tries 6 connections before it gives up, so an unreachable broker is an error within ~15 s, not minutes.
#   blocked_connection_timeout: a broker that blocks publishers (a memory or disk alarm) is an error, not a hang.
def amqp_url(url: str, *, heartbeat_s: int) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    defaults = {
        "heartbeat": str(heartbeat_s),
        "socket_timeout": "2",
        "stack_timeout": "3",
        "blocked_connection_timeout": "10",
    }
    return urlunsplit(parts._replace(query=urlencode(defaults | query)))
