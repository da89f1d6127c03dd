"""`python -m bench.auth_cost`: the CPU that authentication and the rate limit add to one call, measured in this
process (CPU time, so it holds on a busy machine better than wall-clock figures do).

- a key already seen: parse it, find it in the cache, hash the secret and compare (no PostgreSQL);
- the rate limit: one `limits` moving-window hit on Redis (the client's share; Redis's own is reported apart).

Stores are embedded unless REDIS_URL / DATABASE_URL are given.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

from server.auth import Authenticator
from server.rate_limit import OrderRateLimit
from tests.scratch_stores import ScratchStores
from workers.account_store import AccountStore
from workers.api_keys import new_key
from workers.migrate import migrate
from workers.redis_client import async_redis

CALLS = 20_000


def _redis_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(redis_url: str, database_url: str, redis_pid: int | None) -> dict[str, float]:
    migrate(database_url)
    accounts = await AccountStore.open(database_url)
    key = new_key()
    account = await accounts.create_account("auth-cost", 10**9, key)
    auth = Authenticator(accounts, required=True, cache_seconds=2)
    await auth.authenticate(key.api_key)  # seen once: cached from now on
    t0 = time.process_time()
    for _ in range(CALLS):
        await auth.authenticate(key.api_key)
    authenticate_us = (time.process_time() - t0) / CALLS * 1e6

    redis = async_redis(redis_url)
    limit = OrderRateLimit(redis, default_limit=100)
    await limit.acquire(account)
    r0, t0, w0 = _redis_cpu_s(redis_pid), time.process_time(), time.monotonic()
    for _ in range(CALLS // 4):
        await limit.acquire(account)
    n = CALLS // 4
    out = {
        "authenticate_cached_us": round(authenticate_us, 1),
        "rate_limit_client_us": round((time.process_time() - t0) / n * 1e6, 1),
        "rate_limit_redis_us": round((_redis_cpu_s(redis_pid) - r0) / n * 1e6, 1),
        "rate_limit_wall_us": round((time.monotonic() - w0) / n * 1e6, 1),
    }
    await redis.aclose()
    await accounts.close()
    return out


def main() -> None:
    stores = ScratchStores.start(
        Path(tempfile.mkdtemp(prefix="oe-auth-cost-")),
        redis_url=os.environ.get("REDIS_URL"),
        postgres_url=os.environ.get("DATABASE_URL"),
        prefix="oe_bench",
    )
    try:
        pid = int(stores.redis_server.pid) if stores.redis_server and stores.redis_server.pid else None
        figures = asyncio.run(measure(stores.new_redis(flush=True), stores.new_database(), pid))
    finally:
        stores.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print({**figures, "max_rss_mib": round(usage.ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
