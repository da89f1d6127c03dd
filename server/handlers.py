"""Rewrapping a grpc.aio method handler, the one way every interceptor here does it: the behaviour of a
unary-request RPC is replaced, its (de)serializers kept. Client-streaming RPCs (the service has none) pass as
they are."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Unary = Callable[..., Awaitable[Any]]
Stream = Callable[..., AsyncIterator[Any]]


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
    unary: Callable[[Unary], Unary],
    stream: Callable[[Stream], Stream],
) -> grpc.RpcMethodHandler[Any, Any] | None:
    """`handler` with its behaviour passed through `unary` (one answer) or `stream` (a server stream)."""
    if handler is None or handler.request_streaming:
        return handler
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        # A streaming handler may be a coroutine that sends with `context.write` (grpc_health's Watch is).
        behaviour: Any = handler.unary_stream
        wrapped = unary(behaviour) if inspect.iscoroutinefunction(behaviour) else stream(behaviour)
        return grpc.unary_stream_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler
