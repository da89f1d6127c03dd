"""gRPC-Web on the bridge's port: `POST /orderengine.v1.OrderService/<Method>`, for browser apps with typed clients.

Each call becomes one call on the bridge's gRPC channel to the service; `grpc_web_wire` holds the format.

The bridge relays each message's bytes without decoding them: the channel is given no serializers, so the request
bytes the browser framed go upstream as they came and the service's response bytes come back to be framed again.
Decoding and re-encoding would cost about 1 us per event, 1% of the ~100 us of bridge CPU an event takes, and an
A/B run could not tell the two apart (BENCHMARKS.md). Bytes are relayed because the bridge then knows no message
and no method: an RPC the .proto gains works through a bridge built before it, and the service alone judges every
request (a corrupt one gets INVALID_ARGUMENT from it, as over native gRPC). Every method is called as
unary-request, streaming-response: on the wire a unary response is a stream of one message, so one relay serves
both kinds.

- The status travels in a trailer frame, or, when the call fails before its first message, in the response
  headers with an empty body ("trailers-only"); CORS exposes `grpc-status`, `grpc-message` and
  `grpc-status-details-bin` so browser code can read them there.
- `grpc-timeout` becomes the upstream call's deadline; a browser that goes away cancels the upstream call at
  once (the disconnect is awaited beside the relay, not noticed at the next write).
- Of the request headers only the caller's metadata is forwarded (`FORWARDED_METADATA`): the rest describe the
  browser, not the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import Any

import grpc
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from client.async_client import AsyncOrderClient
from client.errors import OrderServiceError
from orderengine.v1 import order_service_pb2 as pb
from server.bridge import grpc_web_wire as wire

SERVICE = pb.DESCRIPTOR.services_by_name["OrderService"].full_name
PATH = f"/{SERVICE}/{{method}}"
_METHOD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")

# The caller's metadata: the API key (accounts) and a request id. The trace context (`traceparent`) is carried on
# by the bridge's tracing (server/bridge/tracing.py) when tracing is on. Other headers (cookies, user agent,
# origin, fetch metadata) describe the browser and stay at the edge.
FORWARDED_METADATA = ("authorization", "x-request-id")
# What gRPC-Web clients send beyond the CORS-safelisted headers, and what their code must read.
CORS_REQUEST_HEADERS = ("x-grpc-web", "x-user-agent", "grpc-timeout", "traceparent", "tracestate", *FORWARDED_METADATA)
CORS_EXPOSED_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin")
# Requests are small (the largest is an order); base64 text mode makes them a third larger.
MAX_REQUEST_BYTES = 64 * 1024
_UNAVAILABLE_MESSAGE = "order service unavailable"
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # grpc-stubs lacks it


async def call(request: Request) -> Response:
    """POST /orderengine.v1.OrderService/{method}: one gRPC-Web call relayed to the service."""
    fmt = wire.format_of(request.headers.get("content-type"))
    if fmt is None:
        return PlainTextResponse(f"gRPC-Web takes {wire.BINARY_TYPE} or {wire.TEXT_TYPE}", status_code=415)
    try:
        path = _method_path(request.path_params["method"])
        timeout = wire.parse_timeout(request.headers.get("grpc-timeout"))
        metadata = _forwarded_metadata(request)
        message = wire.request_message(fmt.decode(await _read_body(request)))
    except wire.WireError as e:
        return StatusResponse(fmt, e.code, e.message)
    except ClientDisconnect:
        return Response(status_code=499)  # nobody is left to read it
    client: AsyncOrderClient = request.app.state.client
    multicallable = client.channel.unary_stream(path, request_serializer=None, response_deserializer=None)
    return RelayResponse(fmt, lambda: multicallable(message, timeout=timeout, metadata=metadata))


def _method_path(name: str) -> str:
    """The gRPC path; which methods exist is the service's to say (UNIMPLEMENTED), only the name's form is ours."""
    if _METHOD_NAME.match(name) is None:
        raise wire.WireError(grpc.StatusCode.UNIMPLEMENTED, f"no method {name[:64]!r} in {SERVICE}")
    return f"/{SERVICE}/{name}"


def _forwarded_metadata(request: Request) -> list[tuple[str, str]]:
    metadata: list[tuple[str, str]] = []
    for key in FORWARDED_METADATA:
        for value in request.headers.getlist(key):
            if not value.isascii() or not value.isprintable():
                raise wire.WireError(grpc.StatusCode.INVALID_ARGUMENT, f"{key} must be printable ASCII")
            metadata.append((key, value))
    return metadata


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    too_large = wire.WireError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request larger than {MAX_REQUEST_BYTES} bytes")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise too_large
    return bytes(body)


def _status_of(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    code, details = error.code(), error.details() or ""
    if OrderServiceError(code, details).is_connection_failure:
        details = _UNAVAILABLE_MESSAGE  # grpc core's text names the bridge's internal addresses
    return code, details


class StatusResponse(Response):
    """A trailers-only response: the status in the headers, no body."""

    def __init__(self, fmt: wire.Format, code: grpc.StatusCode, message: str, trailing: wire.Metadata = ()) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [
            (b"content-type", fmt.content_type.encode()),
            (b"content-length", b"0"),
            *wire.status_headers(code, message, trailing),
        ]


class RelayResponse(Response):
    """Relays one upstream call: headers at its first message, each message as it comes, the status at the end."""

    def __init__(self, fmt: wire.Format, start: Callable[[], grpc.aio.UnaryStreamCall[bytes, bytes]]) -> None:
        super().__init__(status_code=200)
        self.fmt = fmt
        self.start = start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream: grpc.aio.UnaryStreamCall[bytes, bytes] = self.start()
        relaying = asyncio.create_task(self._relay(upstream, scope, receive, send))
        leaving = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({relaying, leaving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            upstream.cancel()  # a no-op once the call has ended; otherwise the service sees CANCELLED
            for task in (relaying, leaving):
                task.cancel()
            await asyncio.gather(relaying, leaving, return_exceptions=True)
        error = relaying.exception() if relaying.done() and not relaying.cancelled() else None
        if error is not None and not isinstance(error, OSError):  # OSError: the browser left mid-write
            raise error

    async def _relay(
        self, upstream: grpc.aio.UnaryStreamCall[bytes, bytes], scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            first = await upstream.read()
        except grpc.aio.AioRpcError as e:
            await StatusResponse(self.fmt, *_status_of(e), _pairs(e.trailing_metadata()))(scope, receive, send)
            return
        if first is _EOF:
            trailing = _pairs(await upstream.trailing_metadata())
            response = StatusResponse(self.fmt, await upstream.code(), await upstream.details() or "", trailing)
            await response(scope, receive, send)
            return
        initial = _pairs(await upstream.initial_metadata())
        headers = [(b"content-type", self.fmt.content_type.encode())]
        headers += [(k, v) for k, v in wire.metadata_headers(initial) if k != b"content-type"]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send(send, wire.frame(_bytes(first)))
        code, details, trailing = grpc.StatusCode.OK, "", []
        while True:
            try:
                message = await upstream.read()
            except grpc.aio.AioRpcError as e:
                (code, details), trailing = _status_of(e), _pairs(e.trailing_metadata())
                break
            if message is _EOF:
                trailing = _pairs(await upstream.trailing_metadata())
                break
            await self._send(send, wire.frame(_bytes(message)))
        await self._send(send, wire.trailer_frame(wire.status_headers(code, details, trailing)), more=False)

    async def _send(self, send: Send, chunk: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": self.fmt.encode(chunk), "more_body": more})


def _pairs(metadata: Any) -> list[tuple[str, str | bytes]]:
    """grpc.aio.Metadata (or None) as key-value pairs; grpc-stubs types it loosely."""
    return [(str(key), value) for key, value in metadata or ()]


def _bytes(message: object) -> bytes:
    assert isinstance(message, bytes), "the channel was given no deserializer"
    return message


async def _until_disconnect(receive: Receive) -> None:
    """Returns when the browser goes away (the request body has been read already)."""
    with contextlib.suppress(OSError):
        while (await receive())["type"] != "http.disconnect":
            pass
