"""The HTTP/WebSocket bridge against the real system, through real sockets (SPEC section 4, issue 4)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from client.async_client import AsyncOrderClient
from client.json_format import event_json
from server.bridge import serve_bridge
from tests.integration.bridge_harness import BridgeThread, ahttp, http, post_json
from tests.integration.serve_process import Serve
from tests.scratch_stores import free_port
from tests.stack import Stack, Stores
from workers.config import Settings

LIFECYCLE = ["pending", "routing", "building", "submitted", "confirmed"]
ALLOWED_ORIGIN = "http://desk.example"
WS_TIMEOUT = 30


@pytest.fixture(scope="module")
def bridge(stack: Stack) -> Iterator[BridgeThread]:
    b = BridgeThread(stack.grpc_target, [ALLOWED_ORIGIN]).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
async def grpc_client(stack: Stack) -> AsyncIterator[AsyncOrderClient]:
    async with AsyncOrderClient(stack.grpc_target) as c:
        yield c


def place(bridge: BridgeThread, **overrides: Any) -> str:
    order = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, **overrides}
    result = post_json(f"{bridge.http}/api/orders/execute", order)
    assert result.status == 200, result.body
    order_id: str = result.json()["orderId"]
    return order_id


async def receive_all(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Every message until the bridge closes the socket, with its close code and reason."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(WS_TIMEOUT):
        try:
            async for raw in ws:
                messages.append(json.loads(raw))
        except websockets.ConnectionClosedError:
            pass
    return messages, ws.close_code, ws.close_reason


async def watch_ws(bridge: BridgeThread, path: str) -> tuple[list[dict[str, Any]], int | None, str | None]:
    async with websockets.connect(f"{bridge.ws}{path}", open_timeout=WS_TIMEOUT) as ws:
        return await receive_all(ws)


async def finished(client: AsyncOrderClient, order_id: str) -> list[dict[str, Any]]:
    """Waits (over gRPC) until the order is final; its events as the bridge should send them."""
    async with asyncio.timeout(WS_TIMEOUT):
        return [event_json(e) async for e in client.watch(order_id)]


# -- HTTP --------------------------------------------------------------------------------------------------------


async def test_health_ok_when_service_answers(bridge: BridgeThread) -> None:
    result = await ahttp("GET", f"{bridge.http}/health")
    assert (result.status, result.json()) == (200, {"status": "ok"})


async def test_health_503_when_service_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: connections are refused
        b = BridgeThread(dead).start()
        try:
            result = await ahttp("GET", f"{b.http}/health")
            assert result.status == 503
            assert result.json()["status"] == "unavailable"
            order = b'{"tokenIn":"SOL","tokenOut":"USDC","amount":1}'
            placed = await ahttp("POST", f"{b.http}/api/orders/execute", order)
            assert placed.status == 503 and placed.json()["code"] == "UNAVAILABLE"
        finally:
            b.stop()


async def test_seed_readme_post_then_websocket_works_unchanged(bridge: BridgeThread) -> None:
    # The seed README's example, byte for byte: POST a JSON number amount, then follow ws://.../ws/orders/{id}.
    result = await ahttp(
        "POST", f"{bridge.http}/api/orders/execute", b'{\n  "tokenIn": "SOL",\n  "tokenOut": "USDC",\n  "amount": 1\n}'
    )
    assert result.status == 200
    order_id = result.json()["orderId"]
    assert uuid.UUID(order_id)
    messages, code, _ = await watch_ws(bridge, f"/ws/orders/{order_id}")
    assert [m["status"] for m in messages] == LIFECYCLE
    assert code == 1000
    building, confirmed = messages[2], messages[4]
    assert building["dex"] in ("raydium", "meteora")
    assert confirmed["txHash"] and confirmed["executedPrice"] and confirmed["amountOut"]
    assert all(m["orderId"] == order_id for m in messages)
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert all(m["timestamp"].endswith("Z") for m in messages)


async def test_execute_accepts_string_amount_and_options(bridge: BridgeThread, grpc_client: AsyncOrderClient) -> None:
    key = uuid.uuid4().hex
    body = {"tokenIn": "USDC", "tokenOut": "SOL", "amount": "250.5", "slippageBps": 75, "idempotencyKey": key}
    first = await ahttp("POST", f"{bridge.http}/api/orders/execute", json.dumps(body).encode())
    again = await ahttp("POST", f"{bridge.http}/api/orders/execute", json.dumps(body).encode())
    assert first.status == again.status == 200
    assert first.json() == again.json()  # same key, same parameters: the same order
    order = await grpc_client.get(first.json()["orderId"])
    assert (order.token_in, order.token_out, order.amount, order.slippage_bps) == ("USDC", "SOL", "250.5", 75)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tokenOut": "USDC", "amount": 1}, "tokenIn"),
        ({"tokenIn": "SOL", "tokenOut": "USDC"}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": True}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1e"}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps": -1}, "slippageBps"),
        # judged by the service, named by the bridge in camelCase
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": -1}, "amount"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 0}, "amount"),
        ({"tokenIn": "NOPE", "tokenOut": "USDC", "amount": 1}, "tokenIn"),
        ({"tokenIn": "SOL", "tokenOut": "SOL", "amount": 1}, "tokenOut"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps": 9000}, "slippageBps"),
        ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "slippageBps": 10001}, "slippageBps"),
    ],
)
async def test_bad_order_is_400_naming_the_field(bridge: BridgeThread, body: dict[str, Any], field: str) -> None:
    result = await ahttp("POST", f"{bridge.http}/api/orders/execute", json.dumps(body).encode())
    assert result.status == 400, result.body
    answer = result.json()
    assert answer["field"] == field, answer
    assert answer["error"] and answer["code"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("raw", [b'{"tokenIn": "SOL",', b"", b"[1, 2]", b"not json", b'{"amount": NaN}'])
async def test_malformed_json_is_400(bridge: BridgeThread, raw: bytes) -> None:
    result = await ahttp("POST", f"{bridge.http}/api/orders/execute", raw)
    assert result.status == 400
    assert result.json()["error"]


async def test_oversized_body_is_413(bridge: BridgeThread) -> None:
    padding = "x" * (17 * 1024)
    body = json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1, "note": padding}).encode()
    result = await ahttp("POST", f"{bridge.http}/api/orders/execute", body)
    assert result.status == 413
    assert "larger than" in result.json()["error"]


async def test_get_order_as_camel_case_json(bridge: BridgeThread, grpc_client: AsyncOrderClient) -> None:
    order_id = place(bridge, amount="2")
    events = await finished(grpc_client, order_id)
    result = await ahttp("GET", f"{bridge.http}/api/orders/{order_id}")
    assert result.status == 200
    order = result.json()
    assert order["orderId"] == order_id
    assert (order["tokenIn"], order["tokenOut"], order["amount"], order["status"]) == ("SOL", "USDC", "2", "confirmed")
    assert order["txHash"] == events[-1]["txHash"] and order["amountOut"] == events[-1]["amountOut"]
    assert order["lastSeq"] == 5 and order["route"]["legs"][0]["tokenIn"] == "SOL"


async def test_get_unknown_order_404_and_malformed_400(bridge: BridgeThread) -> None:
    unknown = await ahttp("GET", f"{bridge.http}/api/orders/{uuid.uuid4()}")
    assert unknown.status == 404 and unknown.json()["code"] == "NOT_FOUND"
    malformed = await ahttp("GET", f"{bridge.http}/api/orders/not-a-uuid")
    assert malformed.status == 400 and malformed.json()["field"] == "orderId"


async def test_list_recent_orders_with_status_filter(bridge: BridgeThread, grpc_client: AsyncOrderClient) -> None:
    order_id = place(bridge)
    await finished(grpc_client, order_id)
    recent = await ahttp("GET", f"{bridge.http}/api/orders?limit=5")
    assert recent.status == 200
    orders = recent.json()["orders"]
    assert 1 <= len(orders) <= 5 and order_id in [o["orderId"] for o in orders]
    confirmed = (await ahttp("GET", f"{bridge.http}/api/orders?status=confirmed&limit=500")).json()["orders"]
    assert confirmed and all(o["status"] == "confirmed" for o in confirmed)
    bad = await ahttp("GET", f"{bridge.http}/api/orders?status=bogus")
    assert bad.status == 400 and bad.json()["field"] == "status"
    assert (await ahttp("GET", f"{bridge.http}/api/orders?limit=0")).json()["field"] == "limit"


async def test_quote_lists_venues_and_route(bridge: BridgeThread) -> None:
    result = await ahttp("GET", f"{bridge.http}/api/quote?tokenIn=SOL&tokenOut=USDC&amount=1000")
    assert result.status == 200, result.body
    quote = result.json()
    assert {q["dex"] for q in quote["quotes"]} <= {"raydium", "meteora"} and quote["quotes"]
    assert quote["route"]["legs"] and quote["route"]["amountOut"]
    missing = await ahttp("GET", f"{bridge.http}/api/quote?tokenIn=SOL&amount=1")
    assert missing.status == 400 and missing.json()["field"] == "tokenOut"


def test_cors_allows_configured_origins_only(bridge: BridgeThread) -> None:
    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    allowed = http("OPTIONS", f"{bridge.http}/api/orders/execute", headers=preflight)
    assert allowed.status == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = http("OPTIONS", f"{bridge.http}/api/orders/execute", headers={**preflight, "Origin": "http://evil.example"})
    assert other.status == 400 and "access-control-allow-origin" not in other.headers
    simple = http("GET", f"{bridge.http}/health", headers={"Origin": ALLOWED_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_page_and_its_modules_are_served(bridge: BridgeThread) -> None:
    page = http("GET", f"{bridge.http}/")
    assert page.status == 200 and b'<script type="module" src="js/main.js">' in page.body
    for path in ("/style.css", "/js/main.js", "/js/api.js", "/js/tokens.js", "/js/views.js", "/js/format.js"):
        assert http("GET", f"{bridge.http}{path}").status == 200, path


# -- WebSocket ---------------------------------------------------------------------------------------------------


async def test_late_subscriber_gets_the_whole_history(bridge: BridgeThread, grpc_client: AsyncOrderClient) -> None:
    order_id = place(bridge)
    expected = await finished(grpc_client, order_id)  # the order is final before the socket opens
    messages, code, _ = await watch_ws(bridge, f"/ws/orders/{order_id}")
    assert messages == expected
    assert [m["status"] for m in messages] == LIFECYCLE
    assert code == 1000


async def test_from_seq_sends_only_later_events(bridge: BridgeThread, grpc_client: AsyncOrderClient) -> None:
    order_id = place(bridge)
    expected = await finished(grpc_client, order_id)
    messages, code, _ = await watch_ws(bridge, f"/ws/orders/{order_id}?fromSeq=2")
    assert messages == expected[2:]
    assert [m["seq"] for m in messages] == [3, 4, 5] and code == 1000
    nothing, code, _ = await watch_ws(bridge, f"/ws/orders/{order_id}?fromSeq=5")
    assert nothing == [] and code == 1000


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        (f"/ws/orders/{uuid.UUID(int=42)}", 4404, "order not found"),
        ("/ws/orders/not-a-uuid", 4400, "order_id"),
        (f"/ws/orders/{uuid.UUID(int=42)}?fromSeq=-1", 4400, "fromSeq"),
    ],
)
async def test_refused_sockets_say_why(bridge: BridgeThread, path: str, code: int, reason: str) -> None:
    messages, close_code, close_reason = await watch_ws(bridge, path)
    assert messages == []
    assert close_code == code
    assert close_reason is not None and reason in close_reason


async def test_hundred_sockets_on_one_order_see_the_same_events(bridge: BridgeThread) -> None:
    order_id = place(bridge, amount="3")

    async def one() -> tuple[list[dict[str, Any]], int | None, str | None]:
        return await watch_ws(bridge, f"/ws/orders/{order_id}")

    results = await asyncio.gather(*(one() for _ in range(100)))
    first = results[0][0]
    assert [m["status"] for m in first] == LIFECYCLE
    assert all(messages == first and code == 1000 for messages, code, _ in results)


async def test_single_connection_execute_socket(bridge: BridgeThread) -> None:
    async with websockets.connect(f"{bridge.ws}/api/orders/execute") as ws:
        await ws.send(json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1}))
        messages, code, _ = await receive_all(ws)
    assert set(messages[0]) == {"orderId"}
    order_id = messages[0]["orderId"]
    assert [m["status"] for m in messages[1:]] == LIFECYCLE
    assert all(m["orderId"] == order_id for m in messages[1:])
    assert code == 1000


@pytest.mark.parametrize(
    ("first_message", "field"),
    [('{"tokenIn": "SOL"', None), ('{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "abc"}', "amount")],
)
async def test_execute_socket_refuses_bad_orders(bridge: BridgeThread, first_message: str, field: str | None) -> None:
    async with websockets.connect(f"{bridge.ws}/api/orders/execute") as ws:
        await ws.send(first_message)
        messages, code, reason = await receive_all(ws)
    assert len(messages) == 1 and messages[0]["error"] and messages[0]["field"] == field
    assert code == 4400 and reason


async def test_order_past_its_price_impact_limit_is_409_and_closes_4409(bridge: BridgeThread) -> None:
    body = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": 10_000, "maxPriceImpactBps": 50}
    result = await ahttp("POST", f"{bridge.http}/api/orders/execute", json.dumps(body).encode())
    assert result.status == 409, result.body
    answer = result.json()
    assert answer["code"] == "FAILED_PRECONDITION" and answer["error"].startswith("PRICE_IMPACT_TOO_HIGH: ")
    assert "limit of 50 bps" in answer["error"]
    async with websockets.connect(f"{bridge.ws}/api/orders/execute") as ws:
        await ws.send(json.dumps(body))
        messages, code, reason = await receive_all(ws)
    assert messages[0]["error"].startswith("PRICE_IMPACT_TOO_HIGH: ") and code == 4409 and reason


async def test_serve_bridge_runs_until_cancelled(stack: Stack) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(grpc_target=stack.grpc_target, http_host="127.0.0.1", http_port=port)
    task = asyncio.create_task(serve_bridge(settings))
    try:
        async with asyncio.timeout(WS_TIMEOUT):
            while True:  # the bridge binds its own port here; poll the health endpoint until it answers
                if task.done():
                    task.result()
                try:
                    result = await ahttp("GET", f"http://127.0.0.1:{port}/health")
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        assert result.status == 200
    finally:
        task.cancel()
        async with asyncio.timeout(10):
            with pytest.raises(asyncio.CancelledError):
                await task
    with pytest.raises(OSError):
        await ahttp("GET", f"http://127.0.0.1:{port}/health")


# -- the gRPC service restarts under an open socket --------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_stack(stores: Stores) -> Iterator[Stack]:
    """Realistic latency: confirmation takes 2-3 s after submission, time enough to restart a server."""
    s = Stack.start(stores, MARKET_LATENCY="realistic")
    yield s
    s.stop()


@pytest.mark.fault
async def test_socket_survives_a_grpc_server_restart(slow_stack: Stack) -> None:
    serve = Serve(slow_stack)
    serve.start()
    await asyncio.to_thread(slow_stack.wait_serving, serve.target)
    b = BridgeThread(serve.target).start()
    try:
        order_id = await asyncio.to_thread(place, b)
        messages: list[dict[str, Any]] = []
        async with websockets.connect(f"{b.ws}/ws/orders/{order_id}") as ws:
            async with asyncio.timeout(WS_TIMEOUT):
                async for raw in ws:
                    messages.append(json.loads(raw))
                    if messages[-1]["status"] == "submitted":
                        await asyncio.to_thread(serve.kill)
                        serve.start()
            assert ws.close_code == 1000
        assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]  # the bridge resumed its watch: no gap, no repeat
        assert [m["status"] for m in messages] == LIFECYCLE
    finally:
        b.stop()
        serve.stop()


async def test_socket_closes_1013_when_the_service_stays_down() -> None:
    b = BridgeThread(f"127.0.0.1:{free_port()}").start()
    try:
        messages, code, reason = await watch_ws(b, f"/ws/orders/{uuid.uuid4()}")
        assert messages == [] and code == 1013
        assert reason is not None and "unavailable" in reason
    finally:
        b.stop()


# -- limit orders and cancel (issue 10) ------------------------------------------------------------------------------


def test_a_limit_order_through_the_bridge_rests_shows_its_fields_and_cancels(bridge: BridgeThread) -> None:
    order_id = place(bridge, orderType="limit", limitPrice=1000000.5, expiresAt=_in_an_hour())
    cancelled = post_json(f"{bridge.http}/api/orders/{order_id}/cancel", {})
    assert cancelled.status == 200, cancelled.body
    body = cancelled.json()
    assert (body["status"], body["orderType"], body["limitPrice"]) == ("cancelled", "limit", "1000000.5")
    assert body["expiresAt"].endswith("Z")
    again = post_json(f"{bridge.http}/api/orders/{order_id}/cancel", {})
    assert again.status == 200 and again.json() == body


async def test_the_socket_shows_open_and_cancelled(bridge: BridgeThread) -> None:
    order_id = place(bridge, orderType="limit", limitPrice="1000000")
    async with websockets.connect(f"{bridge.ws}/ws/orders/{order_id}", open_timeout=WS_TIMEOUT) as ws:
        async with asyncio.timeout(WS_TIMEOUT):
            seen = [json.loads(await ws.recv())["status"] for _ in range(2)]
        assert seen == ["pending", "open"]
        assert post_json(f"{bridge.http}/api/orders/{order_id}/cancel", {}).status == 200
        messages, code, _ = await receive_all(ws)
    assert [m["status"] for m in messages] == ["cancelled"] and code == 1000


async def test_cancel_of_a_final_order_is_409_naming_its_status_and_unknown_is_404(
    bridge: BridgeThread, grpc_client: AsyncOrderClient
) -> None:
    order_id = place(bridge)
    async with asyncio.timeout(WS_TIMEOUT):
        events = [e async for e in grpc_client.watch(order_id)]  # ends after the terminal event
    status = event_json(events[-1])["status"]
    refused = post_json(f"{bridge.http}/api/orders/{order_id}/cancel", {})
    assert refused.status == 409 and status in refused.json()["error"]
    assert refused.json()["code"] == "FAILED_PRECONDITION"
    assert post_json(f"{bridge.http}/api/orders/{uuid.uuid4()}/cancel", {}).status == 404
    assert post_json(f"{bridge.http}/api/orders/nope/cancel", {}).status == 400


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"orderType": "stop"}, "orderType"),
        ({"orderType": 2}, "orderType"),
        ({"orderType": "limit"}, "limitPrice"),
        ({"orderType": "limit", "limitPrice": "0"}, "limitPrice"),
        ({"orderType": "limit", "limitPrice": "-5"}, "limitPrice"),
        ({"orderType": "limit", "limitPrice": "abc"}, "limitPrice"),
        ({"orderType": "limit", "limitPrice": 150, "expiresAt": "tomorrow"}, "expiresAt"),
        ({"orderType": "limit", "limitPrice": 150, "expiresAt": "2020-01-01T00:00:00"}, "expiresAt"),
        ({"orderType": "limit", "limitPrice": 150, "expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
        ({"limitPrice": 150}, "limitPrice"),
        ({"orderType": "sniper", "tokenOut": "not-a-mint"}, "tokenOut"),
    ],
)
def test_bad_limit_and_sniper_fields_are_400_naming_the_field(bridge: BridgeThread, override, field) -> None:
    result = post_json(
        f"{bridge.http}/api/orders/execute", {"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1} | override
    )
    assert result.status == 400, result.body
    assert result.json()["field"] == field, result.json()


def _in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
