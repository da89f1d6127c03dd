"""The async Redis client every process uses for publishing and enqueueing.

A blocking pool: under a burst, a call waits (up to `POOL_WAIT_S`) for one of `MAX_CONNECTIONS` connections
instead of failing with "Too many connections", which redis-py's default pool does past 100.
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64
POOL_WAIT_S = 2.0


def async_redis(url: str, *, socket_timeout: float = 5.0) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2,
    )
    return aioredis.Redis(connection_pool=pool)
