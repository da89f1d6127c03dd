"""The bridge's WebSocket handlers: an order's events as JSON text messages, one per event.

Close codes: 1000 after the terminal event; 4400 bad input (malformed id, bad fromSeq, bad order JSON, or a
message on a socket that takes none); 4401 no key where one is required, or a malformed, wrong or revoked key;
4404 unknown order (or another account's) or no such socket; 4409 idempotency key reused with other parameters,
or an order the market cannot take as asked (PRICE_IMPACT_TOO_HIGH); 4413 an order message over 16 KiB; 4429 the
account's orders-per-minute limit (the reason says when to retry); 1013 the order service is unreachable or at its
stream limit (try again later); 1011 a bug in the bridge, never the client's input (and logged). A frame over
64 KiB never reaches this code: the WebSocket layer closes with 1009 (message too big). The reason says what
happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from client.async_client import AsyncOrderClient
from client.errors import OrderServiceError
from client.json_format import event_json
from server.bridge.parsing import (
    MAX_BODY_BYTES,
    InputError,
    load_json,
    parse_from_seq,
    parse_order,
    service_error_body,
)

log = logging.getLogger(__name__)

FIRST_MESSAGE_TIMEOUT_S = 30.0

CLOSE_NORMAL = 1000
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_CONFLICT = 4409
CLOSE_TOO_BIG = 4413
CLOSE_RATE_LIMITED = 4429

_CLOSE_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: CLOSE_BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: CLOSE_NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: CLOSE_CONFLICT,
    grpc.StatusCode.UNAUTHENTICATED: CLOSE_UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION: CLOSE_CONFLICT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: CLOSE_TRY_AGAIN,  # a stream limit; the rate limit is told apart below
    grpc.StatusCode.UNAVAILABLE: CLOSE_TRY_AGAIN,
    grpc.StatusCode.DEADLINE_EXCEEDED: CLOSE_TRY_AGAIN,
}


def _client(ws: WebSocket) -> AsyncOrderClient:
    """The service's client, calling with the key this socket came with (see `credentials.ApiKeys`)."""
    client: AsyncOrderClient = ws.app.state.client
    return client.with_api_key(ws.state.api_key)


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = " ".join(text.split()).encode(errors="replace")
    return data[:123].decode(errors="ignore")


def close_for(error: OrderServiceError) -> tuple[int, str]:
    code = _CLOSE_OF.get(error.code, CLOSE_INTERNAL)
    if error.reason == "RATE_LIMITED":  # the account's limit, unlike a busy server's, is the caller's to wait out
        code = CLOSE_RATE_LIMITED
    if error.code == grpc.StatusCode.NOT_FOUND:
        return code, "order not found"
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return code, "order service unavailable, reconnect later"
    return code, _reason(error.one_line())


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        # the browser may leave at the same moment
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await ws.close(code=code, reason=_reason(reason))


async def _send_json(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(json.dumps(message, separators=(",", ":")))


class UnexpectedMessage(Exception):
    """The client sent a message on a socket that only sends."""


async def _until_disconnect(ws: WebSocket) -> None:
    """Returns when the browser goes away; raises UnexpectedMessage when it sends anything instead."""
    message = await ws.receive()
    if message["type"] != "websocket.disconnect":
        raise UnexpectedMessage


async def stream_events(ws: WebSocket, order_id: str, from_seq: int) -> None:
    """Send the order's events with seq > from_seq, then close: 1000 after the terminal event.

    The gRPC watch and a reader of the socket run side by side, so a browser that leaves cancels the watch
    at once instead of when the next event fails to send.
    """

    async def pump() -> None:
        async for event in _client(ws).watch(order_id, from_seq=from_seq):
            await _send_json(ws, event_json(event))

    pumping = asyncio.create_task(pump(), name=f"ws-pump-{order_id}")
    reading = asyncio.create_task(_until_disconnect(ws), name=f"ws-read-{order_id}")
    try:
        await asyncio.wait({pumping, reading}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, reading):
            task.cancel()
        await asyncio.gather(pumping, reading, return_exceptions=True)
    if reading.done() and not reading.cancelled():
        if isinstance(reading.exception(), UnexpectedMessage):
            await _close(ws, CLOSE_BAD_REQUEST, "this socket takes no messages: it only sends the order's events")
        return  # otherwise the browser went away
    error = pumping.exception() if not pumping.cancelled() else None
    if error is None:
        await _close(ws, CLOSE_NORMAL, "order finished")
    elif isinstance(error, OrderServiceError):
        await _close(ws, *close_for(error))
    elif not isinstance(error, WebSocketDisconnect | OSError):
        log.error("watch socket for order %r failed", order_id, exc_info=error)
        await _close(ws, CLOSE_INTERNAL, f"bridge error: {type(error).__name__}")


async def watch_order(ws: WebSocket) -> None:
    """/ws/orders/{orderId}?fromSeq=N"""
    await ws.accept()
    try:
        from_seq = parse_from_seq(ws.query_params.get("fromSeq"))
    except InputError as e:
        await _close(ws, CLOSE_BAD_REQUEST, e.message)
        return
    await stream_events(ws, ws.path_params["orderId"], from_seq)


async def no_such_socket(ws: WebSocket) -> None:
    """Any other WebSocket path: refused with a reason rather than handed to the static files (an error)."""
    await ws.accept()
    await _close(ws, CLOSE_NOT_FOUND, f"no such socket: {ws.url.path[:60]} (try /ws/orders/{{orderId}})")


async def _first_message(ws: WebSocket) -> str | None:
    """The first text (or UTF-8 binary) message, or None when the browser leaves first."""
    try:
        message = await asyncio.wait_for(ws.receive(), FIRST_MESSAGE_TIMEOUT_S)
    except TimeoutError:
        raise InputError(f"no order received within {FIRST_MESSAGE_TIMEOUT_S:.0f} s") from None
    if message["type"] == "websocket.disconnect":
        return None
    if message.get("text") is not None:
        text: str = message["text"]
        return text
    try:
        return bytes(message.get("bytes") or b"").decode()
    except UnicodeDecodeError:
        raise InputError("the order must be UTF-8 JSON") from None


async def execute_and_watch(ws: WebSocket) -> None:
    """/api/orders/execute as a WebSocket: first message the order; answers {"orderId"}, then events."""
    await ws.accept()
    try:
        text = await _first_message(ws)
        if text is None:
            return
        if len(text.encode(errors="replace")) > MAX_BODY_BYTES:
            raise InputError(f"order message larger than {MAX_BODY_BYTES} bytes", status=413)
        order = parse_order(load_json(text))
        order_id = await _client(ws).execute(
            order.token_in,
            order.token_out,
            order.amount,
            order.slippage_bps,
            order.idempotency_key,
            max_price_impact_bps=order.max_price_impact_bps,
            **order.execute_kwargs(),
        )
    except InputError as e:
        await _send_json(ws, e.body())
        await _close(ws, CLOSE_TOO_BIG if e.status == 413 else CLOSE_BAD_REQUEST, e.message)
        return
    except OrderServiceError as e:
        await _send_json(ws, service_error_body(e)[1])
        await _close(ws, *close_for(e))
        return
    await _send_json(ws, {"orderId": order_id})
    await stream_events(ws, order_id, 0)
