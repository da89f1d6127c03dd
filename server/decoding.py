"""Request decoding of our own, for every RPC of the server: bytes that are not the method's message are
INVALID_ARGUMENT.

grpc decodes a unary request with the handler's deserializer before any handler or interceptor code runs, and
whatever that raises comes back UNKNOWN ("Unexpected <class 'DecodeError'>: ...") with a traceback in the log.
`RequestDecoding` therefore registers unary handlers without a deserializer (grpc hands over the raw bytes) and
decodes inside the call with `strict(...)`, where a refusal can be a status. Streamed requests are decoded by grpc
as the handler reads them, so there the strict deserializer stays in grpc's hands and its marker exception, raised
inside the handler's read, is turned into the status on the way out.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from server.rich_status import Refusal, abort

Deserializer = Callable[[bytes], Any]
Context = grpc.aio.ServicerContext[Any, Any]


class UndecodableRequest(ValueError):
    """The marker `strict` raises: the request bytes are not a message of the method's request type."""


def _message_name(deserializer: Deserializer) -> str:
    message_type = getattr(deserializer, "__self__", None)  # `Message.FromString` is a bound classmethod
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message"))


def strict(deserializer: Deserializer) -> Deserializer:
    """`deserializer`, raising only `UndecodableRequest` (with the parser's reason) for bytes it cannot decode."""
    name = _message_name(deserializer)

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:  # DecodeError, and whatever else a parser raises for hostile bytes
            reason = str(exc).rsplit(": ", 1)[-1] if str(exc) else type(exc).__name__
            raise UndecodableRequest(f"the request is not a valid {name} message: {reason}") from None

    return decode


async def _refuse(context: Context, error: UndecodableRequest) -> NoReturn:
    await abort(context, Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(error), "MALFORMED_REQUEST"))


def _unary_unary(behavior: Callable[..., Awaitable[Any]], decode: Deserializer) -> Callable[..., Awaitable[Any]]:
    async def handler(raw: bytes, context: Context) -> Any:
        try:
            request = decode(raw)
        except UndecodableRequest as e:
            await _refuse(context, e)
        return await behavior(request, context)

    return handler


def _unary_stream(behavior: Callable[..., Any], decode: Deserializer) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(behavior):
        # A streaming handler may also be a coroutine that sends with `context.write` (grpc_health's Watch is).
        async def writer(raw: bytes, context: Context) -> None:
            try:
                request = decode(raw)
            except UndecodableRequest as e:
                await _refuse(context, e)
            await behavior(request, context)

        return writer

    async def handler(raw: bytes, context: Context) -> AsyncIterator[Any]:
        try:
            request = decode(raw)
        except UndecodableRequest as e:
            await _refuse(context, e)
        async for response in behavior(request, context):
            yield response

    return handler


def _stream_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(requests: AsyncIterator[Any], context: Context) -> Any:
        try:
            return await behavior(requests, context)
        except UndecodableRequest as e:
            await _refuse(context, e)

    return handler


def _stream_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(behavior):

        async def writer(requests: AsyncIterator[Any], context: Context) -> None:
            try:
                await behavior(requests, context)
            except UndecodableRequest as e:
                await _refuse(context, e)

        return writer

    async def handler(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        try:
            async for response in behavior(requests, context):
                yield response
        except UndecodableRequest as e:
            await _refuse(context, e)

    return handler


def _is_async(behavior: Any) -> bool:
    return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


def decoding_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with its requests decoded by `strict(...)`; handlers without a deserializer are left alone."""
    deserializer = handler.request_deserializer
    behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    if deserializer is None or not _is_async(behavior):
        return handler
    decode, serialize = strict(deserializer), handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_unary(handler.unary_unary, decode), request_deserializer=None, response_serializer=serialize
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _unary_stream(handler.unary_stream, decode),
            request_deserializer=None,
            response_serializer=serialize,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _stream_unary(handler.stream_unary), request_deserializer=decode, response_serializer=serialize
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_stream(handler.stream_stream),  # type: ignore[arg-type]
        request_deserializer=decode,
        response_serializer=serialize,
    )


class RequestDecoding(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Decodes every request with `strict(...)`: undecodable bytes are INVALID_ARGUMENT, never UNKNOWN."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        return handler if handler is None else decoding_handler(handler)
