"""API keys and credentials as pure logic: the key format, hashing, header parsing, the key cache."""

from __future__ import annotations

import asyncio

import pytest

from client.credentials import Reason, Unauthenticated, auth_metadata, bearer_token, query_token
from server.auth.authenticator import Authenticator, _TtlCache
from workers.account_store import Account, StoredKey
from workers.api_keys import MalformedKey, hash_secret, new_key, parse_key, secret_matches


def test_a_new_key_parses_back_and_only_its_hash_is_kept() -> None:
    key = new_key()
    assert key.api_key.startswith(f"oe_{key.key_id}_")
    presented = parse_key(key.api_key)
    assert presented.key_id == key.key_id
    assert secret_matches(presented, key.secret_hash)
    assert key.secret_hash == hash_secret(presented.secret) and presented.secret not in repr(presented)
    assert presented.secret not in repr(key) and key.api_key not in repr(key)
    assert len({new_key().api_key for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "text",
    ["", "oe_", "oe_0123456789abcdef_", "oe_0123456789ABCDEF_" + "a" * 43, "xx_0123456789abcdef_" + "a" * 43,
     "oe_0123456789abcdef_" + "a" * 42, "oe_0123456789abcdef_" + "a" * 44, "oe_0123456789abcdef_" + "-" * 43],
)  # fmt: skip
def test_malformed_keys(text: str) -> None:
    with pytest.raises(MalformedKey) as err:
        parse_key(text)
    assert "a" * 10 not in str(err.value)  # never echoes what it was given


def test_a_wrong_secret_does_not_match() -> None:
    key, other = new_key(), new_key()
    forged = parse_key(f"oe_{key.key_id}_{other.api_key.rsplit('_', 1)[1]}")
    assert not secret_matches(forged, key.secret_hash)


@pytest.mark.parametrize(
    ("values", "token", "reason"),
    [
        ([], None, None),
        (["Bearer abc"], "abc", None),
        (["bearer   abc  "], "abc", None),
        ([b"Bearer abc"], "abc", None),
        ([""], None, Reason.KEY_MALFORMED),
        (["Bearer"], None, Reason.KEY_MALFORMED),
        (["Basic abc"], None, Reason.KEY_MALFORMED),
        (["Bearer a", "Bearer a"], None, Reason.KEY_MALFORMED),
        ([b"Bearer \xff"], None, Reason.KEY_MALFORMED),
        (["Bearer " + "a" * 600], None, Reason.KEY_MALFORMED),
    ],
)
def test_bearer_token(values: list[str | bytes], token: str | None, reason: Reason | None) -> None:
    if reason is None:
        assert bearer_token(values) == token
    else:
        with pytest.raises(Unauthenticated) as err:
            bearer_token(values)
        assert err.value.reason == reason


def test_query_token_and_metadata() -> None:
    assert query_token(None) is None and query_token("k") == "k"
    with pytest.raises(Unauthenticated):
        query_token("")
    assert auth_metadata(None) is None
    assert auth_metadata("k") == (("authorization", "Bearer k"),)


async def test_the_cache_loads_once_per_period_and_shares_a_load() -> None:
    now = [0.0]
    loads: list[str] = []
    gate = asyncio.Event()

    async def load() -> str:
        loads.append("x")
        await gate.wait()
        return f"v{len(loads)}"

    cache: _TtlCache[str] = _TtlCache(2.0, 10, lambda: now[0])
    waiting = [asyncio.create_task(cache.get("k", load)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 5 and len(loads) == 1  # five callers, one read
    now[0] = 1.9
    assert await cache.get("k", load) == "v1"
    now[0] = 2.1
    assert await cache.get("k", load) == "v2"  # expired: read again


class Keys:
    """An account store with one key, counting reads (the cache's behaviour is pure logic)."""

    def __init__(self) -> None:
        self.key = new_key()
        self.revoked = False
        self.reads = 0

    async def key_of(self, key_id: str) -> StoredKey | None:
        self.reads += 1
        if key_id != self.key.key_id:
            return None
        return StoredKey(key_id, Account("acct_1", "a"), self.key.secret_hash, self.revoked)

    async def account(self, account_id: str) -> Account | None:
        return Account(account_id, account_id, 7)


async def test_authenticator_refuses_and_accepts_as_issue_9_says() -> None:
    keys = Keys()
    now = [0.0]
    store = type("S", (), {"key": keys.key_of, "account": keys.account})()
    required = Authenticator(store, required=True, cache_seconds=2, clock=lambda: now[0])
    optional = Authenticator(store, required=False, cache_seconds=2, clock=lambda: now[0])
    assert (await required.authenticate(keys.key.api_key)).id == "acct_1"
    for _ in range(10):
        await required.authenticate(keys.key.api_key)
    assert keys.reads == 1  # no store read per call once a key is seen
    assert (await optional.authenticate(None)).id == "default"
    wrong = keys.key.api_key[:-1] + ("a" if keys.key.api_key[-1] != "a" else "b")
    for auth in (required, optional):
        for token, reason in [(None, Reason.KEY_MISSING), ("nope", Reason.KEY_MALFORMED), (wrong, Reason.KEY_INVALID)]:
            if token is None and auth is optional:
                continue
            with pytest.raises(Unauthenticated) as err:
                await auth.authenticate(token)
            assert err.value.reason == reason
    keys.revoked = True
    assert (await required.authenticate(keys.key.api_key)).id == "acct_1"  # still cached
    now[0] = 2.5
    with pytest.raises(Unauthenticated) as err:
        await required.authenticate(keys.key.api_key)
    assert err.value.reason == Reason.KEY_REVOKED


def test_uvicorn_log_lines_never_show_an_access_token() -> None:
    import logging

    from server.bridge import bridge_config

    bridge_config("127.0.0.1:1", [], "127.0.0.1", 0)  # installs the redaction, as the bridge process does
    key = new_key().api_key
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("uvicorn.error")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        # the line uvicorn writes when it accepts a WebSocket
        logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", f"/ws/orders/x?fromSeq=0&access_token={key}")
        logger.info(f"GET /ws/orders/x?access_token={key}")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(seen) == 2 and all("access_token=<redacted>" in line and key not in line for line in seen), seen
