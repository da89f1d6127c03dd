"""Scratch stores for tests and benchmarks: one Redis and one PostgreSQL server (embedded unless URLs are given),
and a fresh PostgreSQL database and Redis database index for each system started on them, dropped at the end.

Nothing here touches a database it did not create: on a given server it only adds and drops its own databases.
It lives with the tests because nothing shipped uses it; `bench/` imports it from here.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from server.embedded import EmbeddedPostgres, EmbeddedRedis

# Database 0 is left alone; the others are handed out in turn, never twice while the scratch server has room: a
# reused index would let a live test system's worker take another system's messages. An embedded server gets room
# for every system a suite makes; an external one has what its `databases` setting says (16 by default).
EMBEDDED_REDIS_DATABASES = 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ScratchStores:
    redis_base: str
    postgres_admin: str
    tmp: Path
    redis_server: EmbeddedRedis | None = None
    postgres_server: EmbeddedPostgres | None = None
    prefix: str = "oe_scratch"
    _databases: list[str] = field(default_factory=list)
    _next_redis_db: int = 1
    redis_databases: int = 16

    @classmethod
    def start(
        cls, tmp: Path, *, redis_url: str | None = None, postgres_url: str | None = None, prefix: str = "oe_scratch"
    ) -> Self:
        """Embedded servers (data under `tmp`) for whichever URL is not given."""
        stores = cls(redis_base=redis_url or "", postgres_admin=postgres_url or "", tmp=tmp, prefix=prefix)
        try:
            if not redis_url:
                stores.redis_server = EmbeddedRedis(tmp / "redis", persist=False, databases=EMBEDDED_REDIS_DATABASES)
                stores.redis_base = stores.redis_server.start()
                stores.redis_databases = EMBEDDED_REDIS_DATABASES
            if not postgres_url:
                stores.postgres_server = EmbeddedPostgres(tmp / "pg")
                stores.postgres_admin = stores.postgres_server.start()
        except BaseException:
            stores.stop()
            raise
        return stores

    @property
    def embedded(self) -> bool:
        return self.redis_server is not None and self.postgres_server is not None

    def new_database(self) -> str:
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.postgres_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        parts = urlsplit(self.postgres_admin)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))

    def new_redis(self, *, flush: bool = False) -> str:
        """The URL of the next Redis database index; `flush` empties it first (for an embedded server's reuse)."""
        db = self._next_redis_db
        self._next_redis_db = db % (self.redis_databases - 1) + 1
        if self.redis_base.startswith("unix://"):
            sep = "&" if "?" in self.redis_base else "?"
            url = f"{self.redis_base}{sep}db={db}"
        else:
            parts = urlsplit(self.redis_base)
            url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
        if flush:
            client = redis.Redis.from_url(url)
            try:
                client.flushdb()
            finally:
                client.close()
        return url

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.postgres_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._databases:
            self._databases.remove(name)

    def stop(self) -> None:
        if self._databases and self.postgres_admin:
            with contextlib.suppress(psycopg.Error), psycopg.connect(self.postgres_admin, autocommit=True) as conn:
                for name in self._databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._databases.clear()
        for server in (self.postgres_server, self.redis_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
