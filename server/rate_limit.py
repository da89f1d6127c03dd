"""Orders per minute per account, held across every server process and host that shares the Redis.

The `limits` library's moving window on Redis: each accepted order is one Lua script (one atomic step) that
checks the account's last N order times and records this one, so "at most N orders in any window" holds exactly,
however many processes race. A refused order costs one more read, for the wait it is told (when the oldest order
of the window leaves it). Times are the servers' clocks (`time.time()`), so hosts must keep them in sync (NTP).
The window is a minute; RATE_LIMIT_WINDOW_SECONDS shortens it for tests.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from workers.account_store import Account

KEY_PREFIX = "orderengine:orders-per-window"


class RateLimited(Exception):
    """The account placed its limit of orders in the last window; `retry_after_s` says when the next one fits."""

    def __init__(self, limit: int, window_s: int, retry_after_s: float) -> None:
        per = "minute" if window_s == 60 else f"{window_s} s"
        super().__init__(
            f"rate limit: at most {limit} orders per {per} for this account; retry in {retry_after_s:.1f} s"
        )
        self.limit = limit
        self.window_s = window_s
        self.retry_after_s = retry_after_s


class RateLimiterUnavailable(Exception):
    """Redis, which holds the counts, cannot be reached: no order is accepted unchecked."""


class OrderRateLimit:
    def __init__(self, redis: aioredis.Redis, *, default_limit: int, window_s: int = 60) -> None:
        self.default_limit = default_limit
        self.window_s = window_s
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # the process's pool, passed through
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: dict[int, RateLimitItem] = {}

    def _item(self, limit: int) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = RateLimitItemPerSecond(limit, self.window_s)
        return item

    async def acquire(self, account: Account) -> None:
        """Counts one order for the account, or raises RateLimited (and counts nothing)."""
        limit = account.orders_per_minute or self.default_limit
        item = self._item(limit)
        try:
            if await self._limiter.hit(item, account.id):
                return
            stats = await self._limiter.get_window_stats(item, account.id)
        except RedisError as exc:
            raise RateLimiterUnavailable(f"the rate limiter (Redis) is unavailable: {exc}") from exc
        raise RateLimited(limit, self.window_s, max(stats.reset_time - time.time(), 0.001))
