"""Every RPC and every HTTP/WebSocket endpoint, as the order's owner, as another account, with no key, with a
malformed key and with a revoked key, in both AUTH modes: each gets exactly the answer of issue 9.

- owner: everything works; the idempotency key returns the owner's order.
- another account (or, under AUTH=optional, no key = the `default` account): the owner's order is NOT_FOUND /
  404 / close 4404 exactly as a missing order is; lists never show it; the same idempotency key makes an order of
  its own.
- no key under AUTH=required, a malformed key, a revoked key (in both modes): UNAUTHENTICATED / 401 / close 4401,
  with the stable reason, and nothing stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import websockets

from client.errors import status_details
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import count_rows
from tests.integration.accounts_harness import Caller, create_account, new_key, revoke
from tests.integration.bridge_harness import BridgeThread, ahttp
from tests.stack import Stack, Stores

MODES = ("required", "optional")
CALLERS = ("owner", "other", "none", "malformed", "revoked")
MALFORMED = "oe_0123_not-a-key"
ORDER: dict[str, Any] = {"token_in": "SOL", "token_out": "USDC", "amount": "0.2"}
WS_TIMEOUT = 30


@dataclass
class World:
    mode: str
    stack: Stack
    bridge: BridgeThread
    owner: Caller
    other: Caller
    revoked: Caller
    order_id: str
    idempotency_key: str
    channel: grpc.aio.Channel | None = None

    def key(self, caller: str) -> str | None:
        return {
            "owner": self.owner.api_key,
            "other": self.other.api_key,
            "none": None,
            "malformed": MALFORMED,
            "revoked": self.revoked.api_key,
        }[caller]

    def metadata(self, caller: str) -> tuple[tuple[str, str], ...]:
        key = self.key(caller)
        return (("authorization", f"Bearer {key}"),) if key else ()

    def headers(self, caller: str) -> dict[str, str]:
        key = self.key(caller)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def refusal(self, caller: str) -> str | None:
        """The UNAUTHENTICATED reason this caller gets, or None when it is let in."""
        if caller == "malformed":
            return "KEY_MALFORMED"
        if caller == "revoked":
            return "KEY_REVOKED"
        if caller == "none" and self.mode == "required":
            return "KEY_MISSING"
        return None

    def stub(self) -> pb_grpc.OrderServiceAsyncStub:
        if self.channel is None:
            self.channel = grpc.aio.insecure_channel(self.stack.grpc_target)
        return pb_grpc.OrderServiceStub(self.channel)


@pytest.fixture(scope="module", params=MODES)
def world(request: pytest.FixtureRequest, stores: Stores) -> Iterator[World]:
    mode: str = request.param
    stack = Stack.start(stores, AUTH=mode)
    bridge = BridgeThread(stack.grpc_target, auth_required=mode == "required").start()
    try:
        owner = create_account(stack, f"owner-{mode}")
        other = create_account(stack, f"other-{mode}")
        revoked = new_key(stack, owner.name)  # the owner's own key, revoked: it reads nothing, not even its orders
        revoke(stack, revoked.key_id)
        key = f"matrix-{uuid.uuid4()}"
        order_id = asyncio.run(_place_and_finish(stack.grpc_target, owner, key))
        yield World(mode, stack, bridge, owner, other, revoked, order_id, key)
    finally:
        bridge.stop()
        stack.stop()


async def _place_and_finish(target: str, owner: Caller, key: str) -> str:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        request = pb.ExecuteOrderRequest(**ORDER, idempotency_key=key)
        order_id = (await stub.ExecuteOrder(request, metadata=owner.metadata, timeout=10)).order_id
        watch = stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), metadata=owner.metadata)
        events = [r.event async for r in watch]
        assert events[-1].status == pb.ORDER_STATUS_CONFIRMED
        return order_id


@pytest.fixture
async def w(world: World) -> Any:
    """The world with a channel on this test's event loop."""
    world.channel = None
    yield world
    if world.channel is not None:
        await world.channel.close()
        world.channel = None


def reason_of(error: grpc.aio.AioRpcError) -> str | None:
    return status_details(error.trailing_metadata()).reason


async def refused_or_none(call: Any, w: World, caller: str) -> Any:
    """Runs the call; when the caller must be refused, checks UNAUTHENTICATED with its reason and returns None."""
    expected = w.refusal(caller)
    if expected is None:
        return await call
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value
    assert reason_of(err.value) == expected
    return None


async def assert_not_found_like_a_missing_order(call: Any, order_id: str, missing: Any) -> None:
    """The owner's order is answered exactly as an order that does not exist (id aside)."""
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await call
    with pytest.raises(grpc.aio.AioRpcError) as absent:
        await missing[0]
    for err, oid in ((hidden.value, order_id), (absent.value, missing[1])):
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert err.details() == f"order {oid} not found"
        assert reason_of(err) == "ORDER_NOT_FOUND"


# -- gRPC ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS)
async def test_execute_order(w: World, caller: str) -> None:
    before = count_rows(w.stack.database_url, "orders")
    request = pb.ExecuteOrderRequest(**ORDER, idempotency_key=w.idempotency_key)
    response = await refused_or_none(w.stub().ExecuteOrder(request, metadata=w.metadata(caller), timeout=10), w, caller)
    if response is None:
        assert count_rows(w.stack.database_url, "orders") == before  # a refused call stores nothing
    elif caller == "owner":
        assert response.order_id == w.order_id  # the owner's idempotency key: the owner's order
        assert count_rows(w.stack.database_url, "orders") == before
    else:
        assert response.order_id != w.order_id  # idempotency keys are per account: an order of its own
        again = await w.stub().ExecuteOrder(request, metadata=w.metadata(caller), timeout=10)
        assert again.order_id == response.order_id


@pytest.mark.parametrize("caller", CALLERS)
async def test_get_order(w: World, caller: str) -> None:
    call = w.stub().GetOrder(pb.GetOrderRequest(order_id=w.order_id), metadata=w.metadata(caller), timeout=10)
    if w.refusal(caller) is not None:
        await refused_or_none(call, w, caller)
    elif caller == "owner":
        assert (await call).order.order_id == w.order_id
    else:
        missing = str(uuid.uuid4())
        other_call = w.stub().GetOrder(pb.GetOrderRequest(order_id=missing), metadata=w.metadata(caller), timeout=10)
        await assert_not_found_like_a_missing_order(call, w.order_id, (other_call, missing))


@pytest.mark.parametrize("from_seq", [0, 2])
@pytest.mark.parametrize("caller", CALLERS)
async def test_watch_order(w: World, caller: str, from_seq: int) -> None:
    async def watch(order_id: str) -> list[pb.OrderEvent]:
        request = pb.WatchOrderRequest(order_id=order_id, from_seq=from_seq)
        return [r.event async for r in w.stub().WatchOrder(request, metadata=w.metadata(caller), timeout=10)]

    if w.refusal(caller) is not None:
        await refused_or_none(watch(w.order_id), w, caller)
    elif caller == "owner":
        events = await watch(w.order_id)
        assert [e.seq for e in events] == list(range(from_seq + 1, 6))
    else:
        missing = str(uuid.uuid4())
        await assert_not_found_like_a_missing_order(watch(w.order_id), w.order_id, (watch(missing), missing))


@pytest.mark.parametrize("caller", CALLERS)
async def test_list_orders(w: World, caller: str) -> None:
    call = w.stub().ListOrders(pb.ListOrdersRequest(page_size=500), metadata=w.metadata(caller), timeout=10)
    response = await refused_or_none(call, w, caller)
    if response is None:
        return
    ids = {o.order_id for o in response.orders}
    assert (w.order_id in ids) == (caller == "owner")


@pytest.mark.parametrize("caller", CALLERS)
async def test_get_quote(w: World, caller: str) -> None:
    request = pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount="1")
    response = await refused_or_none(w.stub().GetQuote(request, metadata=w.metadata(caller), timeout=10), w, caller)
    if response is not None:
        assert response.route.amount_out


async def test_lists_show_only_the_callers_orders(w: World) -> None:
    """Two accounts, each with orders: each list is exactly its own."""
    stub = w.stub()
    mine = {
        name: {
            (await stub.ExecuteOrder(pb.ExecuteOrderRequest(**ORDER), metadata=c.metadata, timeout=10)).order_id
            for _ in range(3)
        }
        for name, c in (("owner", w.owner), ("other", w.other))
    }
    for name, c in (("owner", w.owner), ("other", w.other)):
        listed = await stub.ListOrders(pb.ListOrdersRequest(page_size=500), metadata=c.metadata, timeout=10)
        ids = {o.order_id for o in listed.orders}
        assert mine[name] <= ids
        theirs = mine["other" if name == "owner" else "owner"] | ({w.order_id} if name == "other" else set())
        assert not ids & theirs


# -- HTTP and WebSocket (the bridge) ---------------------------------------------------------------------------------


def http_refusal(w: World, caller: str, status: int, body: dict[str, Any]) -> bool:
    """True (after checking 401 and the reason) when the caller must be refused."""
    expected = w.refusal(caller)
    if expected is None:
        return False
    assert status == 401, body
    assert body["code"] == "UNAUTHENTICATED" and body["reason"] == expected, body
    return True


@pytest.mark.parametrize("caller", CALLERS)
async def test_http_execute(w: World, caller: str) -> None:
    before = count_rows(w.stack.database_url, "orders")
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.2", "idempotencyKey": w.idempotency_key}
    r = await ahttp("POST", f"{w.bridge.http}/api/orders/execute", json.dumps(body).encode(), w.headers(caller))
    if http_refusal(w, caller, r.status, r.json()):
        assert r.headers.get("www-authenticate", "").startswith("Bearer")
        assert count_rows(w.stack.database_url, "orders") == before
        return
    assert r.status == 200
    assert (r.json()["orderId"] == w.order_id) == (caller == "owner")


@pytest.mark.parametrize("caller", CALLERS)
async def test_http_get_order(w: World, caller: str) -> None:
    r = await ahttp("GET", f"{w.bridge.http}/api/orders/{w.order_id}", None, w.headers(caller))
    if http_refusal(w, caller, r.status, r.json()):
        return
    if caller == "owner":
        assert r.status == 200 and r.json()["orderId"] == w.order_id
        return
    missing = str(uuid.uuid4())
    absent = await ahttp("GET", f"{w.bridge.http}/api/orders/{missing}", None, w.headers(caller))
    assert r.status == absent.status == 404
    assert r.json()["error"].replace(w.order_id, "ID") == absent.json()["error"].replace(missing, "ID")
    assert r.json()["reason"] == absent.json()["reason"] == "ORDER_NOT_FOUND"


@pytest.mark.parametrize("caller", CALLERS)
async def test_http_list_orders(w: World, caller: str) -> None:
    r = await ahttp("GET", f"{w.bridge.http}/api/orders?limit=500", None, w.headers(caller))
    if http_refusal(w, caller, r.status, r.json()):
        return
    assert r.status == 200
    assert (w.order_id in {o["orderId"] for o in r.json()["orders"]}) == (caller == "owner")


@pytest.mark.parametrize("caller", CALLERS)
async def test_http_quote(w: World, caller: str) -> None:
    r = await ahttp("GET", f"{w.bridge.http}/api/quote?tokenIn=SOL&tokenOut=USDC&amount=1", None, w.headers(caller))
    if http_refusal(w, caller, r.status, r.json()):
        return
    assert r.status == 200 and r.json()["route"]


async def ws_messages(url: str, headers: dict[str, str], first: str | None = None) -> tuple[list[Any], int | None, str]:
    async with websockets.connect(url, additional_headers=headers, open_timeout=WS_TIMEOUT) as ws:
        if first is not None:
            with contextlib.suppress(websockets.ConnectionClosed):  # a refused socket may be closed already
                await ws.send(first)
        messages: list[Any] = []
        async with asyncio.timeout(WS_TIMEOUT):
            try:
                async for raw in ws:
                    messages.append(json.loads(raw))
            except websockets.ConnectionClosedError:
                pass
        return messages, ws.close_code, ws.close_reason or ""


# A browser's key rides in ?access_token=; a key-less socket has nothing to put there (the header case covers it).
WS_WAYS = [(c, via) for c in CALLERS for via in ("header", "access_token") if (c, via) != ("none", "access_token")]


@pytest.mark.parametrize(("caller", "via"), WS_WAYS)
async def test_ws_watch(w: World, caller: str, via: str) -> None:
    key = w.key(caller)
    if via == "access_token":
        url, headers = f"{w.bridge.ws}/ws/orders/{w.order_id}?access_token={key}", {}
    else:
        url, headers = f"{w.bridge.ws}/ws/orders/{w.order_id}", w.headers(caller)
    messages, code, reason = await ws_messages(url, headers)
    if w.refusal(caller) is not None:
        assert (messages, code) == ([], 4401), reason
    elif caller == "owner":
        assert code == 1000 and [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    else:
        assert (messages, code, reason) == ([], 4404, "order not found")


@pytest.mark.parametrize("caller", CALLERS)
async def test_ws_execute_and_watch(w: World, caller: str) -> None:
    before = count_rows(w.stack.database_url, "orders")
    order = json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.2", "idempotencyKey": w.idempotency_key})
    messages, code, reason = await ws_messages(f"{w.bridge.ws}/api/orders/execute", w.headers(caller), order)
    expected = w.refusal(caller)
    if expected is not None:
        assert code == 4401, (code, reason, messages)
        assert count_rows(w.stack.database_url, "orders") == before
        return
    assert code == 1000, (code, reason, messages)
    order_id = messages[0]["orderId"]
    assert (order_id == w.order_id) == (caller == "owner")
    assert messages[-1]["status"] == "confirmed"


@pytest.mark.parametrize("caller", CALLERS)
async def test_cancel_order(w: World, caller: str) -> None:
    """Only the owner may cancel: the owner hears that the (final) order cannot be cancelled; anyone else that there
    is no such order, exactly as for a missing one."""
    call = w.stub().CancelOrder(pb.CancelOrderRequest(order_id=w.order_id), metadata=w.metadata(caller), timeout=10)
    if w.refusal(caller) is not None:
        await refused_or_none(call, w, caller)
    elif caller == "owner":
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(err.value) == "ORDER_NOT_CANCELLABLE"
    else:
        missing = str(uuid.uuid4())
        other = w.stub().CancelOrder(pb.CancelOrderRequest(order_id=missing), metadata=w.metadata(caller), timeout=10)
        await assert_not_found_like_a_missing_order(call, w.order_id, (other, missing))
    owner_view = await w.stub().GetOrder(pb.GetOrderRequest(order_id=w.order_id), metadata=w.owner.metadata)
    assert owner_view.order.status == pb.ORDER_STATUS_CONFIRMED  # nobody's attempt changed it


@pytest.mark.parametrize("caller", CALLERS)
async def test_http_cancel(w: World, caller: str) -> None:
    r = await ahttp("POST", f"{w.bridge.http}/api/orders/{w.order_id}/cancel", b"{}", w.headers(caller))
    if http_refusal(w, caller, r.status, r.json()):
        return
    if caller == "owner":
        assert r.status == 409 and r.json()["reason"] == "ORDER_NOT_CANCELLABLE"
    else:
        assert r.status == 404 and r.json()["reason"] == "ORDER_NOT_FOUND"
