"""The server's interceptors on a real grpc.aio server in this process: undecodable request bytes are
INVALID_ARGUMENT for every kind of RPC, an abort is a status and not a logged bug, and a real bug still is one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.decoding import RequestDecoding, UndecodableRequest, strict
from server.errors import ErrorMapping
from server.grpc_metrics import GrpcMetrics
from server.grpc_tracing import GrpcTracing

NOT_A_MESSAGE = b"\xff\xff\xff"  # a truncated varint tag: no message of any type
BAD_UTF8 = b"\x0a\x03\xed\xa0\x80"  # field 1 (a string in every request here) holding a lone surrogate


class Scripted(pb_grpc.OrderServiceServicer):
    """Each RPC ends one way: success, an abort, a bug, or a stream aborted midway."""

    async def ExecuteOrder(self, request: pb.ExecuteOrderRequest, context: Any) -> pb.ExecuteOrderResponse:
        return pb.ExecuteOrderResponse(order_id=f"got {request.token_in}")

    async def GetOrder(self, request: pb.GetOrderRequest, context: Any) -> pb.GetOrderResponse:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        raise AssertionError("unreachable")

    async def ListOrders(self, request: pb.ListOrdersRequest, context: Any) -> pb.ListOrdersResponse:
        raise RuntimeError("a real bug")

    async def GetQuote(self, request: pb.GetQuoteRequest, context: Any) -> pb.GetQuoteResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "NO_ROUTE: no pool")
        raise AssertionError("unreachable")

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Any) -> pb.CancelOrderResponse:
        return pb.CancelOrderResponse(order=pb.Order(order_id=request.order_id))

    async def WatchOrder(self, request: pb.WatchOrderRequest, context: Any) -> AsyncIterator[pb.WatchOrderResponse]:
        yield pb.WatchOrderResponse(event=pb.OrderEvent(order_id=request.order_id, seq=1))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "shutting down; resume with from_seq=1")


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[RequestDecoding(), ErrorMapping()])
    pb_grpc.add_OrderServiceServicer_to_server(Scripted(), server)
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def raw_call(target: str, method: str, payload: bytes, streaming: bool = False) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            if streaming:
                async for _ in channel.unary_stream(method, None, None)(payload, timeout=10):
                    pass
            else:
                await channel.unary_unary(method, None, None)(payload, timeout=10)
        except grpc.aio.AioRpcError as e:
            return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def bug_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("payload", [NOT_A_MESSAGE, BAD_UTF8], ids=["corrupt", "bad-utf8"])
@pytest.mark.parametrize(
    ("method", "streaming", "message"),
    [
        ("/orderengine.v1.OrderService/ExecuteOrder", False, "orderengine.v1.ExecuteOrderRequest"),
        ("/orderengine.v1.OrderService/WatchOrder", True, "orderengine.v1.WatchOrderRequest"),
        ("/orderengine.v1.OrderService/CancelOrder", False, "orderengine.v1.CancelOrderRequest"),
        ("/grpc.health.v1.Health/Check", False, "grpc.health.v1.HealthCheckRequest"),
        ("/grpc.health.v1.Health/Watch", True, "grpc.health.v1.HealthCheckRequest"),
    ],
)
async def test_undecodable_request_is_invalid_argument(
    target: str, caplog: pytest.LogCaptureFixture, method: str, streaming: bool, message: str, payload: bytes
) -> None:
    code, details = await raw_call(target, method, payload, streaming)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details.startswith(f"the request is not a valid {message} message: "), details
    assert bug_records(caplog) == []


async def test_a_decodable_request_reaches_the_servicer(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await pb_grpc.OrderServiceStub(channel).ExecuteOrder(pb.ExecuteOrderRequest(token_in="SOL"))
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert response.order_id == "got SOL"
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_streaming_handler_that_writes_with_context_write_still_streams(target: str) -> None:
    # grpc_health's Watch is a coroutine that calls context.write, not an async generator; the decoding wrapper
    # once iterated it and every health Watch failed UNKNOWN, so no balancer could follow a drain.
    async with grpc.aio.insecure_channel(target) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await call.read()
        call.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_abort_is_a_status_not_a_logged_bug(target: str, caplog: pytest.LogCaptureFixture) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.OrderServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(pb.GetOrderRequest(order_id="o1"))
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "order o1 not found")
        seen = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for response in stub.WatchOrder(pb.WatchOrderRequest(order_id="o1")):
                seen.append(response.event.seq)
        assert seen == [1]
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert bug_records(caplog) == []


async def test_a_real_bug_is_still_logged_with_its_traceback(target: str, caplog: pytest.LogCaptureFixture) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.OrderServiceStub(channel).ListOrders(pb.ListOrdersRequest())
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error in RPC"]
    assert logged and logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], RuntimeError)


def test_strict_names_the_message_and_the_reason() -> None:
    decode = strict(pb.GetOrderRequest.FromString)
    assert cast(pb.GetOrderRequest, decode(b"\x0a\x02id")).order_id == "id"
    with pytest.raises(UndecodableRequest) as err:
        decode(BAD_UTF8)
    assert (
        str(err.value)
        == "the request is not a valid orderengine.v1.GetOrderRequest message: String field had bad UTF-8"
    )


async def test_health_watch_streams_through_every_interceptor_the_server_can_install() -> None:
    # The telemetry interceptors wrap streams too (when metrics or tracing is on); each must await such handlers.
    server = grpc.aio.server(interceptors=[GrpcMetrics(), GrpcTracing(), RequestDecoding(), ErrorMapping()])
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            first = await call.read()
            call.cancel()
    finally:
        await server.stop(None)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
