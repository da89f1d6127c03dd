"""gRPC-Web on the bridge (issue 13), driven by clients nobody on the team wrote: connect-web and Google's grpc-web
(text mode) in headless Chromium, connect-node in Node. The gRPC service runs in this process so the tests can see
its open streams (the hub's watched orders) end when a browser goes away.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import socket
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from playwright.async_api import Browser, Playwright, async_playwright

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.bridge import grpc_web_wire as wire
from server.grpc_app import GrpcApp, start_grpc
from tests.integration.bridge_harness import BridgeThread, HttpResult, ahttp
from tests.integration.browser import CHROMIUM_ARGS, need_chromium
from tests.integration.web_clients import (
    BIN,
    SOURCES,
    WEB,
    BrowserClient,
    Bundles,
    CallFailed,
    NodeClient,
    WebClient,
    build_bundles,
    serve_folder,
)
from tests.scratch_stores import free_port
from tests.stack import Stack
from workers.broker import build_broker
from workers.config import Settings
from workers.domain import OrderType
from workers.models import NewOrder
from workers.queue import BrokerQueue, OrderQueue
from workers.store import OrderStore

CLIENTS = ["node", "chromium-connect", "chromium-grpcweb-text"]
LATER_STATUSES = ["ORDER_STATUS_ROUTING", "ORDER_STATUS_BUILDING", "ORDER_STATUS_SUBMITTED", "ORDER_STATUS_CONFIRMED"]
UPSTREAM_GONE_WITHIN_S = 10.0


async def eventually(condition: Callable[[], bool], within: float = UPSTREAM_GONE_WITHIN_S) -> None:
    """Waits until `condition()` holds, checking every 10 ms; fails after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)  # the service's state has no event to await from here


# -- the system: an in-process service on the suite's stores (the suite's worker runs its orders) ----------------


def _settings(stack: Stack) -> Settings:
    return Settings(
        redis_url=stack.redis_url,
        database_url=stack.database_url,
        grpc_host="127.0.0.1",
        market_latency="zero",
        auth="optional",  # callers without a key, as in the order-focused stacks
    )


@pytest.fixture(scope="module")
async def service(stack: Stack) -> AsyncIterator[GrpcApp]:
    app = await start_grpc(_settings(stack), port=free_port())
    yield app
    await app.stop(grace=0)


@pytest.fixture(scope="module")
async def native(service: GrpcApp) -> AsyncIterator[pb_grpc.OrderServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        yield pb_grpc.OrderServiceStub(channel)


@pytest.fixture(scope="module")
async def store(stack: Stack) -> AsyncIterator[OrderStore]:
    s = await OrderStore.open(stack.database_url, min_size=1, max_size=2)
    yield s
    await s.close()


@pytest.fixture(scope="module")
def queue(stack: Stack) -> Iterator[OrderQueue]:
    q = BrokerQueue(build_broker(_settings(stack)))
    yield q
    q.close()


@contextlib.asynccontextmanager
async def held_order(store: OrderStore) -> AsyncIterator[str]:
    """An order stored at `pending` but not queued: it waits there until `release` hands it to the workers."""
    order, _ = await store.create_order(NewOrder("default", OrderType.MARKET, "SOL", "USDC", 10**8, 50))
    try:
        yield order.id
    finally:
        await store.forget_unstarted(order.id)


async def release(queue: OrderQueue, order_id: str) -> None:
    await queue.enqueue_async(order_id)


# -- the clients ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return build_bundles(tmp_path_factory.mktemp("grpc-web"))


@pytest.fixture(scope="module")
def page_origin(bundles: Bundles) -> Iterator[str]:
    with serve_folder(bundles.folder) as origin:
        yield origin


@pytest.fixture(scope="module")
def bridge(service: GrpcApp, page_origin: str) -> Iterator[BridgeThread]:
    b = BridgeThread(f"127.0.0.1:{service.port}", [page_origin]).start()
    yield b
    b.stop()


class LazyBrowser:
    """Chromium, launched when a test first needs it: the Node client's tests run without it."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    async def get(self) -> Browser:
        if self._browser is None:
            executable = need_chromium()
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        return self._browser

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()


@pytest.fixture(scope="module")
async def browsers() -> AsyncIterator[LazyBrowser]:
    lazy = LazyBrowser()
    yield lazy
    await lazy.close()


@pytest.fixture
async def browser(browsers: LazyBrowser) -> Browser:
    return await browsers.get()


async def open_client(name: str, browsers: LazyBrowser, bundles: Bundles, origin: str, bridge_url: str) -> WebClient:
    if name == "node":
        return await NodeClient.start(bundles, bridge_url)
    return await BrowserClient.open(await browsers.get(), origin, bridge_url, name.removeprefix("chromium-"))


async def close_client(client: WebClient) -> None:
    if isinstance(client, NodeClient):
        await client.kill()
    elif isinstance(client, BrowserClient) and not client.page.is_closed():
        await client.close()


@pytest.fixture(params=CLIENTS)
async def client(
    request: pytest.FixtureRequest, browsers: LazyBrowser, bundles: Bundles, page_origin: str, bridge: BridgeThread
) -> AsyncIterator[WebClient]:
    c = await open_client(request.param, browsers, bundles, page_origin, bridge.http)
    yield c
    await close_client(c)


# -- calls, streams, errors, deadlines ------------------------------------------------------------------------


async def test_unary_calls_answer_what_native_grpc_answers(
    client: WebClient, native: pb_grpc.OrderServiceAsyncStub
) -> None:
    placed = await client.call("ExecuteOrder", {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5"})
    order_id = placed["orderId"]
    assert uuid.UUID(order_id)
    got = await client.call("GetOrder", {"orderId": order_id})
    assert got["order"]["orderId"] == order_id and got["order"]["amount"] == "0.5"
    expected = await native.GetOrder(pb.GetOrderRequest(order_id=order_id))
    if json_format.MessageToDict(expected)["order"]["status"] == got["order"]["status"]:  # it may move meanwhile
        assert got == json_format.MessageToDict(expected)
    quote = await client.call("GetQuote", {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "10"})
    assert {q["dex"] for q in quote["quotes"]} <= {"DEX_RAYDIUM", "DEX_METEORA"} and quote["route"]["legs"]
    listed = await client.call("ListOrders", {"pageSize": 100})
    assert order_id in [o["orderId"] for o in listed["orders"]]


async def test_watch_delivers_each_event_as_it_happens(
    client: WebClient, service: GrpcApp, store: OrderStore, queue: OrderQueue
) -> None:
    async with held_order(store) as order_id:
        stream = await client.watch(order_id)
        first = await stream.next()
        assert first is not None and (first["seq"], first["status"]) == ("1", "ORDER_STATUS_PENDING")
        # Delivered while the order still waits for a worker, and the call is still open upstream.
        assert not stream.ended and service.hub.watched_orders == 1
        await release(queue, order_id)
        rest = await stream.rest()
    assert [e["status"] for e in rest] == LATER_STATUSES
    assert [e["seq"] for e in rest] == ["2", "3", "4", "5"]
    assert rest[-1]["txSignature"] and rest[-1]["amountOut"]
    await eventually(lambda: service.hub.watched_orders == 0)


async def test_watch_from_seq_of_a_finished_order(client: WebClient, native: pb_grpc.OrderServiceAsyncStub) -> None:
    placed = await native.ExecuteOrder(pb.ExecuteOrderRequest(token_in="USDC", token_out="SOL", amount="20"))
    native_events = [r.event async for r in native.WatchOrder(pb.WatchOrderRequest(order_id=placed.order_id))]
    stream = await client.watch(placed.order_id, from_seq=2)
    events = await stream.rest()
    assert events == [json_format.MessageToDict(e) for e in native_events[2:]]
    nothing_left = await client.watch(placed.order_id, from_seq=native_events[-1].seq)
    assert await nothing_left.rest() == []  # OK with no message: the status travels in the headers


async def test_errors_arrive_with_their_codes(client: WebClient) -> None:
    unknown = str(uuid.UUID(int=42))
    with pytest.raises(CallFailed) as not_found:
        await client.call("GetOrder", {"orderId": unknown})
    assert not_found.value.code == grpc.StatusCode.NOT_FOUND and unknown in not_found.value.message
    with pytest.raises(CallFailed) as invalid:
        await client.call("ExecuteOrder", {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "abc"})
    assert invalid.value.code == grpc.StatusCode.INVALID_ARGUMENT and "amount" in invalid.value.message
    stream = await client.watch(unknown)
    with pytest.raises(CallFailed) as watched:
        await stream.next()
    assert watched.value.code == grpc.StatusCode.NOT_FOUND


async def test_a_deadline_ends_the_call_and_the_upstream_stream(
    client: WebClient, service: GrpcApp, store: OrderStore
) -> None:
    async with held_order(store) as order_id:
        stream = await client.watch(order_id, timeout_ms=400)
        with pytest.raises(CallFailed) as failed:
            while await stream.next() is not None:
                pass
        assert failed.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        await eventually(lambda: service.hub.watched_orders == 0)


async def test_a_cancelled_call_ends_the_upstream_stream(
    client: WebClient, service: GrpcApp, store: OrderStore
) -> None:
    async with held_order(store) as order_id:
        stream = await client.watch(order_id)
        assert await stream.next() is not None
        assert service.hub.watched_orders == 1
        await stream.abort()
        await eventually(lambda: service.hub.watched_orders == 0)


@pytest.mark.parametrize("library", ["connect", "grpcweb-text"])
async def test_closing_the_tab_mid_stream_ends_the_upstream_stream(
    browser: Browser, page_origin: str, bridge: BridgeThread, service: GrpcApp, store: OrderStore, library: str
) -> None:
    async with held_order(store) as order_id:
        tab = await BrowserClient.open(browser, page_origin, bridge.http, library)
        stream = await tab.watch(order_id)
        assert await stream.next() is not None
        assert service.hub.watched_orders == 1
        await tab.close()
        await eventually(lambda: service.hub.watched_orders == 0)


async def test_a_node_client_killed_mid_stream_ends_the_upstream_stream(
    bundles: Bundles, bridge: BridgeThread, service: GrpcApp, store: OrderStore
) -> None:
    async with held_order(store) as order_id:
        node = await NodeClient.start(bundles, bridge.http)
        stream = await node.watch(order_id)
        assert await stream.next() is not None
        assert service.hub.watched_orders == 1
        await node.kill()
        await eventually(lambda: service.hub.watched_orders == 0)


async def test_a_page_from_an_origin_outside_the_allow_list_is_refused(
    browser: Browser, bundles: Bundles, bridge: BridgeThread
) -> None:
    with serve_folder(bundles.folder) as stranger:  # another port, so another origin
        tab = await BrowserClient.open(browser, stranger, bridge.http, "connect")
        try:
            with pytest.raises(CallFailed) as refused:
                await tab.call("ListOrders", {})
            assert "fetch" in refused.value.message.lower()
        finally:
            await tab.close()


# -- client/web: the example a browser app starts from --------------------------------------------------------


def test_the_typescript_typechecks(bundles: Bundles) -> None:
    """The example and the tests' clients against the code generated from today's .proto (bundles made it)."""
    for project in (WEB, SOURCES):
        done = subprocess.run([BIN / "tsc", "-p", project], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


async def test_the_example_page_places_an_order_and_lists_its_events(
    browsers: LazyBrowser, bundles: Bundles, page_origin: str, bridge: BridgeThread
) -> None:
    built = await asyncio.to_thread(subprocess.run, ["npm", "run", "--silent", "build"], cwd=WEB, capture_output=True)
    assert built.returncode == 0, built.stderr
    example = bundles.folder / "example"
    (example / "dist").mkdir(parents=True, exist_ok=True)
    shutil.copy(WEB / "index.html", example / "index.html")
    shutil.copy(WEB / "dist" / "main.js", example / "dist" / "main.js")
    page = await (await browsers.get()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await page.goto(f"{page_origin}/example/index.html?bridge={bridge.http}")
        await page.fill("input[name=amount]", "0.75")
        await page.click("button")
        await page.wait_for_selector('#events li[data-status="confirmed"]')
        items = await page.locator("#events li").all_inner_texts()
    finally:
        await page.close()
    assert [item.split()[:2] for item in items] == [
        ["#1", "pending"],
        ["#2", "routing"],
        ["#3", "building"],
        ["#4", "submitted"],
        ["#5", "confirmed"],
    ]
    assert "tx" in items[-1] and errors == []


# -- metadata and rich error details pass through untouched (a stand-in service shows what arrived) ------------


def _rich_status(code: grpc.StatusCode, message: str, reason: str) -> bytes:
    """A google.rpc.Status with one ErrorInfo, built from descriptors here (googleapis protos are no dependency)."""
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    status_file = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status.proto", package="google.rpc", syntax="proto3", dependency=["google/protobuf/any.proto"]
    )
    status = status_file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    status.field.add(
        name="details", number=3, type=field.TYPE_MESSAGE, type_name=".google.protobuf.Any", label=field.LABEL_REPEATED
    )
    pool.Add(status_file)
    rich: Any = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))()
    rich.code, rich.message = code.value[0], message
    error_info = b"\n" + bytes([len(reason)]) + reason.encode()  # ErrorInfo{reason}: field 1, length, bytes
    rich.details.add(type_url="type.googleapis.com/google.rpc.ErrorInfo", value=error_info)
    data: bytes = rich.SerializeToString()
    return data


DENIED_DETAILS = _rich_status(grpc.StatusCode.PERMISSION_DENIED, "not yours", "NOT_YOUR_ORDER")
ODD_MESSAGE = "ünïcode, 100% sure: a\tb"


class StandIn:
    """Answers GetOrder with the metadata it received (keys in `token_in`, authorization as the id); the key
    "Bearer denied" gets PERMISSION_DENIED with rich details, the order id "odd" an error whose message needs
    percent-encoding. WatchOrder sends one event, then the PERMISSION_DENIED."""

    @staticmethod
    def _seen(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, str]:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        keys = ",".join(sorted(k for k in metadata if not k.startswith((":", "grpc-")) and k != "user-agent"))
        return str(metadata.get("authorization", "")), keys

    async def get_order(self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        authorization, keys = self._seen(context)
        if authorization == "Bearer denied":
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "not yours",
                trailing_metadata=(("grpc-status-details-bin", DENIED_DETAILS),),
            )
        if request.order_id == "odd":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, ODD_MESSAGE)
        return pb.GetOrderResponse(order=pb.Order(order_id=authorization, token_in=keys))

    async def watch_order(
        self, request: pb.WatchOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchOrderResponse]:
        yield pb.WatchOrderResponse(event=pb.OrderEvent(order_id=request.order_id, seq=1))
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            "not yours",
            trailing_metadata=(("grpc-status-details-bin", DENIED_DETAILS),),
        )


@pytest.fixture(scope="module")
async def stand_in() -> AsyncIterator[str]:
    server = grpc.aio.server()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "GetOrder": grpc.unary_unary_rpc_method_handler(
            StandIn().get_order,
            request_deserializer=pb.GetOrderRequest.FromString,
            response_serializer=pb.GetOrderResponse.SerializeToString,
        ),
        "WatchOrder": grpc.unary_stream_rpc_method_handler(
            StandIn().watch_order,
            request_deserializer=pb.WatchOrderRequest.FromString,
            response_serializer=pb.WatchOrderResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("orderengine.v1.OrderService", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture(scope="module")
def stand_in_bridge(stand_in: str, page_origin: str) -> Iterator[BridgeThread]:
    b = BridgeThread(stand_in, [page_origin]).start()
    yield b
    b.stop()


@pytest.fixture(params=CLIENTS)
async def stand_in_client(
    request: pytest.FixtureRequest,
    browsers: LazyBrowser,
    bundles: Bundles,
    page_origin: str,
    stand_in_bridge: BridgeThread,
) -> AsyncIterator[WebClient]:
    c = await open_client(request.param, browsers, bundles, page_origin, stand_in_bridge.http)
    yield c
    await close_client(c)


async def test_authorization_reaches_the_service_and_browser_headers_do_not(stand_in_client: WebClient) -> None:
    headers = {"authorization": "Bearer k_live_123.secret", "x-request-id": "req-7"}
    answer = await stand_in_client.call("GetOrder", {"orderId": "x"}, headers=headers)
    assert answer["order"]["orderId"] == "Bearer k_live_123.secret"
    # What the service saw besides gRPC's own headers: the caller's metadata, never cookies, origin or the like.
    assert answer["order"]["tokenIn"] == "authorization,x-request-id"


async def test_messages_arrive_as_the_service_wrote_them(stand_in_client: WebClient) -> None:
    with pytest.raises(CallFailed) as odd:
        await stand_in_client.call("GetOrder", {"orderId": "odd"})
    assert (odd.value.code, odd.value.message) == (grpc.StatusCode.FAILED_PRECONDITION, ODD_MESSAGE)


async def test_rich_error_details_pass_through(stand_in_client: WebClient) -> None:
    with pytest.raises(CallFailed) as unary:
        await stand_in_client.call("GetOrder", {"orderId": "x"}, headers={"authorization": "Bearer denied"})
    assert (unary.value.code, unary.value.message) == (grpc.StatusCode.PERMISSION_DENIED, "not yours")
    stream = await stand_in_client.watch("some-order")
    assert await stream.next() is not None
    with pytest.raises(CallFailed) as streamed:
        await stream.next()
    assert streamed.value.code == grpc.StatusCode.PERMISSION_DENIED and streamed.value.message == "not yours"
    if stand_in_client.name.endswith("text"):
        return  # Google's grpc-web client does not surface grpc-status-details-bin
    for failure in (unary.value, streamed.value):
        assert failure.details == [{"type": "google.rpc.ErrorInfo", "value": (b"\n\x0eNOT_YOUR_ORDER").hex()}]


# -- the protocol as bytes: what any client, not only these libraries, can rely on -----------------------------


def frames_of(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flags, length = body[0], int.from_bytes(body[1:5], "big")
        out.append((flags, body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def trailers_of(payload: bytes) -> dict[str, str]:
    lines = payload.decode().split("\r\n")
    return dict(line.split(": ", 1) for line in lines if line)


async def raw_call(
    bridge: BridgeThread, method: str, body: bytes, content_type: str = wire.BINARY_TYPE, **headers: str
) -> HttpResult:
    all_headers = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return await ahttp("POST", f"{bridge.http}/orderengine.v1.OrderService/{method}", body, all_headers)


async def test_the_bridge_honours_grpc_timeout_itself(
    bridge: BridgeThread, service: GrpcApp, store: OrderStore
) -> None:
    async with held_order(store) as order_id:
        request = wire.frame(pb.WatchOrderRequest(order_id=order_id).SerializeToString())
        result = await raw_call(bridge, "WatchOrder", request, grpc_timeout="300m")
    (data_flags, event), (trailer_flags, trailer) = frames_of(result.body)
    assert (data_flags, trailer_flags) == (wire.DATA, wire.TRAILERS)
    assert pb.WatchOrderResponse.FromString(event).event.seq == 1
    assert trailers_of(trailer)["grpc-status"] == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
    await eventually(lambda: service.hub.watched_orders == 0)


async def test_text_mode_carries_the_same_frames_in_padded_base64(
    bridge: BridgeThread, native: pb_grpc.OrderServiceAsyncStub
) -> None:
    placed = await native.ExecuteOrder(pb.ExecuteOrderRequest(token_in="SOL", token_out="USDT", amount="0.3"))
    native_events = [r.event async for r in native.WatchOrder(pb.WatchOrderRequest(order_id=placed.order_id))]
    request = base64.b64encode(wire.frame(pb.WatchOrderRequest(order_id=placed.order_id).SerializeToString()))
    result = await raw_call(bridge, "WatchOrder", request, "application/grpc-web-text")
    assert result.headers["content-type"] == wire.TEXT_TYPE
    frames = frames_of(wire.decode_base64_chunks(result.body))
    assert [pb.WatchOrderResponse.FromString(m).event for _, m in frames[:-1]] == native_events
    assert frames[-1][0] == wire.TRAILERS and trailers_of(frames[-1][1]) == {"grpc-status": "0"}


@pytest.mark.parametrize(
    ("method", "body", "headers", "code", "says"),
    [
        ("Nope", wire.frame(b""), {}, grpc.StatusCode.UNIMPLEMENTED, ""),  # the service's answer
        ("No%20pe", wire.frame(b""), {}, grpc.StatusCode.UNIMPLEMENTED, "no method 'No pe'"),
        ("GetOrder", b"\x00\x00\x00\x00\x09abc", {}, grpc.StatusCode.INVALID_ARGUMENT, "malformed gRPC-Web frame"),
        ("GetOrder", wire.frame(b""), {"grpc-timeout": "soon"}, grpc.StatusCode.INVALID_ARGUMENT, "grpc-timeout"),
        ("GetOrder", wire.frame(bytes(70_000)), {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than 65536 bytes"),
        ("GetOrder", wire.frame(b"\n\x03abc"), {}, grpc.StatusCode.INVALID_ARGUMENT, "order_id"),
        ("GetOrder", wire.frame(b"\xff\xff"), {}, grpc.StatusCode.INVALID_ARGUMENT, "GetOrderRequest message"),
    ],
)
async def test_refused_calls_are_trailers_only_responses_that_say_why(
    bridge: BridgeThread, method: str, body: bytes, headers: dict[str, str], code: grpc.StatusCode, says: str
) -> None:
    result = await raw_call(bridge, method, body, **{k.replace("-", "_"): v for k, v in headers.items()})
    assert result.status == 200 and result.body == b""
    assert result.headers["grpc-status"] == str(code.value[0])
    assert says in urllib.parse.unquote(result.headers["grpc-message"])


async def test_other_content_types_are_refused_as_http(bridge: BridgeThread) -> None:
    json_call = await raw_call(bridge, "GetOrder", b"{}", "application/grpc-web+json")
    assert json_call.status == 415 and wire.BINARY_TYPE.encode() in json_call.body


async def test_cors_lets_allowed_pages_send_grpc_web_headers_and_read_the_status(
    bridge: BridgeThread, page_origin: str
) -> None:
    asked = "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization"
    preflight = await ahttp(
        "OPTIONS",
        f"{bridge.http}/orderengine.v1.OrderService/WatchOrder",
        headers={
            "Origin": page_origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert preflight.status == 200 and preflight.headers["access-control-allow-origin"] == page_origin
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert set(asked.split(",")) <= allowed
    answer = await ahttp(
        "POST",
        f"{bridge.http}/orderengine.v1.OrderService/GetOrder",
        wire.frame(pb.GetOrderRequest(order_id=str(uuid.UUID(int=7))).SerializeToString()),
        headers={"Origin": page_origin, "Content-Type": wire.BINARY_TYPE},
    )
    assert answer.headers["grpc-status"] == str(grpc.StatusCode.NOT_FOUND.value[0])
    exposed = {h.strip() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed


async def test_an_unreachable_service_is_unavailable_without_its_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = BridgeThread(f"127.0.0.1:{s.getsockname()[1]}").start()  # bound, never listening
        try:
            result = await raw_call(dead, "GetOrder", wire.frame(b""))
        finally:
            dead.stop()
    assert result.headers["grpc-status"] == str(grpc.StatusCode.UNAVAILABLE.value[0])
    assert result.headers["grpc-message"] == "order service unavailable"
