"""Maps domain and store exceptions to gRPC statuses, for every RPC, in one interceptor.

Each refusal becomes a `google.rpc.Status` (see `server.rich_status`): the code, a readable message, a stable
`ErrorInfo.reason`, and where it helps a `BadRequest` or a `RetryInfo`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from client.credentials import Unauthenticated
from server.handlers import rewrap
from server.rate_limit import RateLimited, RateLimiterUnavailable
from server.rich_status import Refusal, abort
from server.validation import InvalidArgument
from server.watch import HubUnavailable, WatchInterrupted
from workers.domain import PermanentFailure
from workers.store import IdempotencyConflict, NotCancellable, OrderNotFound, is_unavailable

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The order could not be handed to the workers (Redis); nothing was kept."""


def refusal_for(exc: BaseException) -> Refusal | None:
    """The status an exception becomes; None for what is not ours to classify (it stays as raised)."""
    code = grpc.StatusCode
    match exc:
        case InvalidArgument():
            return Refusal(code.INVALID_ARGUMENT, str(exc), exc.reason, violations=[(exc.field, exc.problem)])
        case OrderNotFound():
            return Refusal(code.NOT_FOUND, str(exc), "ORDER_NOT_FOUND")
        case IdempotencyConflict():
            return Refusal(code.ALREADY_EXISTS, str(exc), "IDEMPOTENCY_KEY_REUSED")
        case Unauthenticated():
            return Refusal(code.UNAUTHENTICATED, exc.message, exc.reason.value)
        case RateLimited():
            metadata = {"limit": str(exc.limit), "window_seconds": str(exc.window_s)}
            return Refusal(
                code.RESOURCE_EXHAUSTED, str(exc), "RATE_LIMITED", retry_delay_s=exc.retry_after_s, metadata=metadata
            )
        case NotCancellable():
            return Refusal(code.FAILED_PRECONDITION, str(exc), "ORDER_NOT_CANCELLABLE")
        case PermanentFailure():  # the market cannot take the order as asked (PRICE_IMPACT_TOO_HIGH, NO_ROUTE, ...)
            return Refusal(code.FAILED_PRECONDITION, f"{exc.code}: {exc.message}", exc.code.value)
        case QueueUnavailable():
            return Refusal(code.UNAVAILABLE, str(exc), "QUEUE_UNAVAILABLE")
        case RateLimiterUnavailable():
            return Refusal(code.UNAVAILABLE, str(exc), "RATE_LIMITER_UNAVAILABLE")
        case WatchInterrupted() | HubUnavailable():
            return Refusal(code.UNAVAILABLE, str(exc), "EVENTS_UNAVAILABLE")
    if is_unavailable(exc):
        return Refusal(code.UNAVAILABLE, f"the order store (PostgreSQL) is unavailable: {exc}", "STORE_UNAVAILABLE")
    return None


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(exc, grpc.aio.AbortError) or context.done() or context.cancelled():
        # The handler's own refusal (NOT_FOUND, UNAVAILABLE, ...) is already a status, and once a status is out
        # (or the client cancelled) what fails is the transport to a client that left: neither is a bug.
        raise exc
    refusal = refusal_for(exc)
    if refusal is None:
        if not isinstance(exc, grpc.RpcError):
            log.exception("unhandled error in RPC")
        raise exc
    await abort(context, refusal)


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
            responses = behavior(request, context)
            if inspect.isawaitable(responses):  # a handler that streams with context.write (grpc's health Watch)
                await responses
                return
            async for response in responses:
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
        return rewrap(await continuation(handler_call_details), _wrap_unary, _wrap_stream)  # type: ignore[return-value]
