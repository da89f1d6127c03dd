"""Accounts and API keys in PostgreSQL: every SQL statement about them lives here.

The server reads a key by its public id (one indexed row, joined to its account) and caches what it read; the
admin commands (`orderengine accounts ...`) write. Secrets are never stored, only their hashes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from workers.api_keys import NewKey
from workers.domain import DEFAULT_OWNER


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    # None: the server's ORDERS_PER_MINUTE.
    orders_per_minute: int | None = None


DEFAULT_ACCOUNT = Account(id=DEFAULT_OWNER, name=DEFAULT_OWNER)


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    account: Account
    secret_hash: bytes = field(repr=False)
    revoked: bool


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account: Account
    active_keys: list[str]
    revoked_keys: list[str]
    orders: int


class AccountExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"an account named {name!r} exists already")


class UnknownAccount(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"no account named {name!r}")


class UnknownKey(Exception):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r}")


def new_account_id() -> str:
    return "acct_" + secrets.token_hex(8)


def _account(row: Any) -> Account:
    return Account(id=row[0], name=row[1], orders_per_minute=row[2])


class AccountStore:
    """Over a connection pool the process already has (the order store's), or its own for a command."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, database_url: str) -> AccountStore:
        pool = AsyncConnectionPool(database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False)
        await pool.open(wait=True, timeout=10)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def key(self, key_id: str) -> StoredKey | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT a.id, a.name, a.orders_per_minute, k.secret_hash, k.revoked_at IS NOT NULL "
                "FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = %s",
                (key_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredKey(key_id=key_id, account=_account(row), secret_hash=bytes(row[3]), revoked=row[4])

    async def account(self, account_id: str) -> Account | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT id, name, orders_per_minute FROM accounts WHERE id = %s", (account_id,))
            row = await cur.fetchone()
        return _account(row) if row else None

    async def create_account(self, name: str, orders_per_minute: int | None, key: NewKey) -> Account:
        """The account and its first key, in one transaction."""
        account = Account(id=new_account_id(), name=name, orders_per_minute=orders_per_minute)
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO accounts (id, name, orders_per_minute) VALUES (%s, %s, %s)",
                    (account.id, name, orders_per_minute),
                )
                await self._insert_key(conn, account.id, key)
        except psycopg.errors.UniqueViolation:
            raise AccountExists(name) from None
        return account

    async def add_key(self, name: str, key: NewKey) -> Account:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT id, name, orders_per_minute FROM accounts WHERE name = %s", (name,))
            row = await cur.fetchone()
            if row is None:
                raise UnknownAccount(name)
            await self._insert_key(conn, row[0], key)
        return _account(row)

    @staticmethod
    async def _insert_key(conn: Any, account_id: str, key: NewKey) -> None:
        await conn.execute(
            "INSERT INTO api_keys (id, account_id, secret_hash) VALUES (%s, %s, %s)",
            (key.key_id, account_id, key.secret_hash),
        )

    async def revoke(self, key_id: str) -> bool:
        """True when revoked now, False when it was revoked already; UnknownKey when there is no such key."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = clock_timestamp() WHERE id = %s AND revoked_at IS NULL RETURNING id",
                (key_id,),
            )
            if await cur.fetchone() is not None:
                return True
            cur = await conn.execute("SELECT 1 FROM api_keys WHERE id = %s", (key_id,))
            if await cur.fetchone() is None:
                raise UnknownKey(key_id)
        return False

    async def list_accounts(self) -> list[AccountSummary]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                SELECT a.id, a.name, a.orders_per_minute,
                       COALESCE(array_agg(k.id ORDER BY k.created_at) FILTER (WHERE k.id IS NOT NULL
                                AND k.revoked_at IS NULL), '{}'),
                       COALESCE(array_agg(k.id ORDER BY k.created_at) FILTER (WHERE k.revoked_at IS NOT NULL), '{}'),
                       (SELECT count(*) FROM orders o WHERE o.owner_id = a.id)
                FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id
                GROUP BY a.id ORDER BY a.created_at, a.name
                """
            )
            rows = await cur.fetchall()
        return [
            AccountSummary(account=_account(r), active_keys=list(r[3]), revoked_keys=list(r[4]), orders=int(r[5]))
            for r in rows
        ]
