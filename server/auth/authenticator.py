"""Turns a presented API key into an account, with PostgreSQL off the hot path.

What a key id resolves to (its account, its secret's hash, whether it is revoked, or that it does not exist) is
cached in the process for `cache_seconds`, so a key costs one indexed read per process per period, and a
revocation is seen by every process within that period (plus one read). Concurrent misses for one key id share
one read. The secret is checked against the cached hash on every call, in constant time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from client.credentials import Reason, Unauthenticated
from workers.account_store import DEFAULT_ACCOUNT, Account, AccountStore, StoredKey
from workers.api_keys import MalformedKey, parse_key, secret_matches

log = logging.getLogger(__name__)

# Revocation must reach every process within 5 s (issue 9): the cache period plus one read must stay under it.
MAX_CACHE_SECONDS = 4.0
MAX_CACHED_KEYS = 10_000


V = TypeVar("V")


class _TtlCache(Generic[V]):
    """A small LRU of values that expire, with one loader in flight per key."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[V]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a loader with no other waiter must not warn
            raise
        finally:
            del self._loading[key]
        future.set_result(value)
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return value


class Authenticator:
    """`authenticate(token)`: the caller's account, or Unauthenticated saying why not.

    `required=False` (AUTH=optional) lets a call without a key act as the built-in `default` account; a key that is
    present but wrong, malformed or revoked is refused in both modes.
    """

    def __init__(
        self,
        accounts: AccountStore,
        *,
        required: bool,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= cache_seconds <= MAX_CACHE_SECONDS:
            raise ValueError(f"cache_seconds must be between 0 and {MAX_CACHE_SECONDS}, got {cache_seconds}")
        self.required = required
        self._accounts = accounts
        self._keys: _TtlCache[StoredKey | None] = _TtlCache(cache_seconds, MAX_CACHED_KEYS, clock)
        self._default: _TtlCache[Account] = _TtlCache(cache_seconds, 1, clock)

    async def authenticate(self, token: str | None) -> Account:
        if token is None:
            if self.required:
                raise Unauthenticated(
                    Reason.KEY_MISSING, "an API key is required: send the header 'authorization: Bearer <api key>'"
                )
            return await self._default.get(DEFAULT_ACCOUNT.id, self._load_default)
        try:
            presented = parse_key(token)
        except MalformedKey as exc:
            raise Unauthenticated(Reason.KEY_MALFORMED, str(exc)) from None
        stored = await self._keys.get(presented.key_id, lambda: self._accounts.key(presented.key_id))
        if stored is None or not secret_matches(presented, stored.secret_hash):
            log.info("refused API key %s: unknown id or wrong secret", presented.key_id)
            raise Unauthenticated(Reason.KEY_INVALID, f"API key {presented.key_id} is not valid")
        if stored.revoked:
            log.info("refused API key %s: revoked", presented.key_id)
            raise Unauthenticated(Reason.KEY_REVOKED, f"API key {presented.key_id} has been revoked")
        return stored.account

    async def _load_default(self) -> Account:
        return await self._accounts.account(DEFAULT_ACCOUNT.id) or DEFAULT_ACCOUNT
