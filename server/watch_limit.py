"""A cap on the WatchOrder streams one server process serves at once (`WATCH_MAX_STREAMS`).

Past the cap a new stream is refused at once with RESOURCE_EXHAUSTED and a message naming the limit, instead of
being accepted into a process that then runs short of memory; the client backs off or tries another server
process. gRPC's own queue of calls not yet picked up (`server_options`) is kept above the cap, so a burst of new
streams waits there instead of being CANCELLED without a word.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from orderengine.v1 import order_service_pb2 as pb
from server.rich_status import Refusal, abort
from workers.config import Settings

WATCH_METHOD = f"/{pb.DESCRIPTOR.services_by_name['OrderService'].full_name}/WatchOrder"

PENDING_CALL_WAIT_S = 120

# Accept client keepalive pings (every 10 s at most often) and keep idle streams alive through proxies.
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The gRPC core options of a server process.

    gRPC's defaults cancel calls that wait to be picked up once 1,000 (soft) to 3,000 (hard) are queued, or once
    one has waited 30 s: a few thousand streams opened at once were answered CANCELLED. Both queue limits are
    GRPC_MAX_PENDING_CALLS, a call may wait PENDING_CALL_WAIT_S (tens of thousands of streams opened at once
    take longer than 30 s to pick up on a busy machine), and one connection (the bridge carries every browser's
    stream on one) may hold as many streams.
    """
    pending = settings.grpc_max_pending_calls
    return [
        *_KEEPALIVE,
        ("grpc.max_concurrent_streams", pending),
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", pending),
        ("grpc.server_max_unrequested_time_in_server", PENDING_CALL_WAIT_S),
        # Room for any authorization value a caller may send (keys are ~80 characters), so that an oversized one
        # reaches the authentication interceptor and is refused UNAUTHENTICATED; past 64 KiB gRPC refuses it.
        ("grpc.max_metadata_size", 64 * 1024),
        ("grpc.absolute_max_metadata_size", 64 * 1024),
    ]


class WatchStreamLimit(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts the open WatchOrder streams and refuses a new one past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method != WATCH_METHOD or not handler.unary_stream:
            return handler
        return grpc.unary_stream_rpc_method_handler(
            self._limited(handler.unary_stream),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _limited(self, behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            if self.open >= self.limit:
                message = (
                    f"this server process already serves {self.limit} WatchOrder streams (WATCH_MAX_STREAMS); "
                    "retry with backoff, or through another server process"
                )
                await abort(context, Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, message, "TOO_MANY_STREAMS"))
            self.open += 1
            try:
                async for response in behavior(request, context):
                    yield response
            finally:
                self.open -= 1

        return handler
