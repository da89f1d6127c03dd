"""Maps domain and store exceptions to gRPC status codes, for every RPC, in one interceptor."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.validation import InvalidArgument
from server.watch import WatchInterrupted
from workers.domain import PermanentFailure
from workers.store import IdempotencyConflict, OrderNotFound, is_unavailable

log = logging.getLogger(__name__)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status an exception becomes; None for what is not ours to classify (it stays as raised)."""
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, IdempotencyConflict):
        return grpc.StatusCode.ALREADY_EXISTS, str(exc)
    if isinstance(exc, OrderNotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, PermanentFailure):  # the market cannot take the order as asked (PRICE_IMPACT_TOO_HIGH...)
        return grpc.StatusCode.FAILED_PRECONDITION, f"{exc.code}: {exc.message}"
    if isinstance(exc, WatchInterrupted):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if is_unavailable(exc):
        return grpc.StatusCode.UNAVAILABLE, f"the order store (PostgreSQL) is unavailable: {exc}"
    return None


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(exc, grpc.aio.AbortError) or context.done() or context.cancelled():
        # The handler's own refusal (NOT_FOUND, UNAVAILABLE, ...) is already a status, and once a status is out
        # (or the client cancelled) what fails is the transport to a client that left: neither is a bug.
        raise exc
    mapped = status_for(exc)
    if mapped is None:
        if not isinstance(exc, grpc.RpcError):
            log.exception("unhandled error in RPC")
        raise exc
    await context.abort(*mapped)


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except Exception as exc:
            await _abort_for(exc, context)

    return handler


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as exc:
            await _abort_for(exc, context)

    return handler


class ErrorMapping(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
