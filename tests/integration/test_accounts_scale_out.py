"""Accounts across processes: two `orderengine serve` processes and a bridge on one Redis and one PostgreSQL.

- The orders-per-minute limit is one limit, whichever server an order goes to: the N+1th order in the window is
  refused (RESOURCE_EXHAUSTED with a RetryInfo; HTTP 429 with Retry-After), stores nothing, and after the wait
  the service named the next order is accepted. Other accounts are not slowed.
- A revoked key is refused by every server process and the bridge within 5 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from client import AsyncOrderClient, RateLimitedError
from client.errors import status_details
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.fault.tools import FIGURES
from tests.helpers import count_rows
from tests.integration.accounts_harness import Caller, create_account, revoke
from tests.integration.bridge_harness import BridgeThread, ahttp
from tests.integration.serve_process import Serve
from tests.stack import Stack, Stores

LIMIT = 4
# The limit's window, shortened from a minute so that the test waits seconds for the recovery.
WINDOW_S = 8
REVOCATION_BOUND_S = 5.0


@dataclass
class TwoServers:
    stack: Stack
    second: Serve
    bridge: BridgeThread

    @property
    def targets(self) -> list[str]:
        return [self.stack.grpc_target, self.second.target]


@pytest.fixture(scope="module")
def two(stores: Stores) -> Iterator[TwoServers]:
    stack = Stack.start(stores, AUTH="required", RATE_LIMIT_WINDOW_SECONDS=str(WINDOW_S))
    second = Serve(stack)
    bridge = BridgeThread(stack.grpc_target, auth_required=True)
    try:
        second.start()
        stack.wait_serving(second.target)
        bridge.start()
        yield TwoServers(stack, second, bridge)
    finally:
        bridge.stop()
        second.stop()
        stack.stop()


REQUEST = pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="0.1")


async def execute(target: str, caller: Caller) -> str:
    async with grpc.aio.insecure_channel(target) as ch:
        response = await pb_grpc.OrderServiceStub(ch).ExecuteOrder(REQUEST, metadata=caller.metadata, timeout=10)
        return response.order_id


async def refused(target: str, caller: Caller) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await execute(target, caller)
    return err.value


async def test_the_limit_holds_across_two_servers_and_recovers_after_the_wait(two: TwoServers) -> None:
    limited = create_account(two.stack, "limited", orders_per_minute=LIMIT)
    bystander = create_account(two.stack, "bystander", orders_per_minute=LIMIT)
    for i in range(LIMIT):  # alternating between the servers: they share one count
        await execute(two.targets[i % 2], limited)
    before = count_rows(two.stack.database_url, "orders")

    over = await refused(two.targets[LIMIT % 2], limited)
    assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = status_details(over.trailing_metadata())
    assert details.reason == "RATE_LIMITED"
    assert details.metadata == {"limit": str(LIMIT), "window_seconds": str(WINDOW_S)}
    assert details.retry_delay_s is not None and 0 < details.retry_delay_s <= WINDOW_S
    assert f"at most {LIMIT} orders per {WINDOW_S} s" in (over.details() or "")
    assert "retry in" in (over.details() or "")

    also_over = await refused(two.targets[(LIMIT + 1) % 2], limited)  # the other server agrees
    assert also_over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    body = b'{"tokenIn":"SOL","tokenOut":"USDC","amount":"0.1"}'
    http = await ahttp("POST", f"{two.bridge.http}/api/orders/execute", body, limited.headers)
    assert http.status == 429, http.body
    assert int(http.headers["retry-after"]) >= 1
    assert http.json()["reason"] == "RATE_LIMITED" and http.json()["retryAfterSeconds"] > 0

    async with AsyncOrderClient(two.second.target, api_key=limited.api_key) as client:
        with pytest.raises(RateLimitedError) as typed:
            await client.execute("SOL", "USDC", "0.1")
    assert typed.value.reason == "RATE_LIMITED"
    assert typed.value.retry_delay_s is not None and 0 < typed.value.retry_delay_s <= WINDOW_S

    assert count_rows(two.stack.database_url, "orders") == before  # every refusal stored nothing
    await execute(two.targets[0], bystander)  # another account is not held back

    # Recovery: wait exactly as long as the service said, then the next order is accepted.
    await asyncio.sleep(typed.value.retry_delay_s)
    assert await execute(two.targets[1], limited)
    FIGURES["rate limit across 2 server processes"] = {
        "limit": f"{LIMIT} per {WINDOW_S} s window",
        "accepted before the limit": LIMIT,
        "refused": 4,
        "stored for refused orders": 0,
        "accepted after the told wait": 1,
    }


async def _refused_after(target: str, caller: Caller, since: float) -> float:
    """Seconds from `since` until the target refuses the key as revoked (asks every 50 ms; nothing to await)."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        while True:
            try:
                await stub.ListOrders(pb.ListOrdersRequest(page_size=1), metadata=caller.metadata, timeout=5)
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
                assert status_details(err.trailing_metadata()).reason == "KEY_REVOKED"
                return time.monotonic() - since
            if time.monotonic() - since > 3 * REVOCATION_BOUND_S:
                raise AssertionError(f"{target} still accepts the revoked key")
            await asyncio.sleep(0.05)


async def _bridge_refused_after(bridge: BridgeThread, caller: Caller, since: float) -> float:
    while True:
        r = await ahttp("GET", f"{bridge.http}/api/orders?limit=1", None, caller.headers)
        if r.status == 401:
            assert r.json()["reason"] == "KEY_REVOKED"
            return time.monotonic() - since
        assert r.status == 200
        if time.monotonic() - since > 3 * REVOCATION_BOUND_S:
            raise AssertionError("the bridge still accepts the revoked key")
        await asyncio.sleep(0.05)


async def test_revocation_reaches_every_process_within_5_s(two: TwoServers) -> None:
    caller = create_account(two.stack, "soon-revoked")
    for target in two.targets:  # every process has seen (and cached) the key
        await execute(target, caller)
    assert (await ahttp("GET", f"{two.bridge.http}/api/orders?limit=1", None, caller.headers)).status == 200

    revoke(two.stack, caller.key_id)
    since = time.monotonic()  # the revocation is committed when the command returns
    waits = await asyncio.gather(
        *(_refused_after(t, caller, since) for t in two.targets), _bridge_refused_after(two.bridge, caller, since)
    )
    assert max(waits) <= REVOCATION_BOUND_S, waits
    FIGURES["key revocation (2 servers + bridge)"] = {
        "refused everywhere after": f"{max(waits):.2f} s",
        "bound": f"{REVOCATION_BOUND_S:.0f} s",
    }
