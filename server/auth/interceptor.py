"""The gRPC server's one authentication point: metadata `authorization: Bearer <key>` -> the caller's account.

It guards OrderService only: health checks and reflection stay open, so load balancers and `grpcurl list` need no
key. A call it refuses never reaches the servicer. A call it lets through runs with its account in
`current_account()`, which is all the servicer knows of who called.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeAlias

import grpc

from client.credentials import Unauthenticated, bearer_token
from server.auth.authenticator import Authenticator
from server.rich_status import Refusal, abort
from workers.account_store import Account

_ACCOUNT: contextvars.ContextVar[Account] = contextvars.ContextVar("orderengine_account")

# A key sent as binary metadata is still a key: judged like any other, never ignored into anonymity.
_CREDENTIAL_KEYS = frozenset({"authorization", "authorization-bin"})

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# What a refused call gets instead of its method: maps the authentication failure (or an outage) to a status.
RefusalFor: TypeAlias = Callable[[Exception], Refusal | None]


def current_account() -> Account:
    """The account of the call being served (set by `Authentication`)."""
    try:
        return _ACCOUNT.get()
    except LookupError:
        raise RuntimeError("no authenticated account: is the Authentication interceptor installed?") from None


@contextlib.contextmanager
def acting_as(account: Account) -> Iterator[None]:
    """Runs the block as `account`: for code that calls the servicer without the interceptor (unit tests)."""
    token = _ACCOUNT.set(account)
    try:
        yield
    finally:
        _ACCOUNT.reset(token)


def _with_account(handler: Handler, account: Account) -> Handler:
    if handler.unary_unary:
        behavior: Callable[..., Awaitable[Any]] = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            _ACCOUNT.set(account)  # each call runs in a task of its own, so this ends with the call
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
    if handler.unary_stream:
        stream_behavior: Callable[..., AsyncIterator[Any]] = handler.unary_stream  # type: ignore[assignment]

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            _ACCOUNT.set(account)
            async for response in stream_behavior(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
    raise TypeError("OrderService has unary and server-streaming methods only")


def _refusing(handler: Handler, refusal: Refusal) -> Handler:
    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort(context, refusal)

    async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        await abort(context, refusal)
        yield  # pragma: no cover - makes this an async generator

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


class Authentication(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates every call to the methods under `service` (e.g. "/orderengine.v1.OrderService/")."""

    def __init__(self, authenticator: Authenticator, service: str, refusal_for: RefusalFor) -> None:
        self._authenticator = authenticator
        self._prefix = f"/{service}/"
        self._refusal_for = refusal_for

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self._prefix):
            return handler
        try:
            metadata = handler_call_details.invocation_metadata or ()
            token = bearer_token([value for key, value in metadata if key in _CREDENTIAL_KEYS])
            account = await self._authenticator.authenticate(token)
        except Exception as exc:
            refusal = self._refusal_for(exc)
            if refusal is None:
                raise
            return _refusing(handler, refusal)
        return _with_account(handler, account)


__all__ = ["Authentication", "Unauthenticated", "acting_as", "current_account"]
