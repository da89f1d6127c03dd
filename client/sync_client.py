"""`OrderClient`: the blocking Python client of OrderService."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import grpc

from client.credentials import auth_metadata
from client.errors import OrderServiceError
from client.options import (
    CHANNEL_OPTIONS,
    DEFAULT_DEADLINE_S,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TARGET,
    TERMINAL_STATUSES,
    ReconnectPolicy,
    channel_credentials,
    execute_request,
    list_request,
    quote_request,
)
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc


class OrderClient:
    """A blocking client over one channel; use it as a context manager or call `close()`.

    `api_key` goes with every call (`authorization: Bearer <key>`); `tls` (or a `ca_file` of the CA that signed
    the server's certificate) connects over TLS, plaintext otherwise.

    Every unary call carries a deadline (`deadline` seconds, per call or the client's default); a failed call
    raises `OrderServiceError` with the gRPC status. `watch` has no deadline: it follows an order to its end,
    reconnecting on UNAVAILABLE.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        deadline: float = DEFAULT_DEADLINE_S,
        reconnect: ReconnectPolicy | None = None,
        channel: grpc.Channel | None = None,
        api_key: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
    ) -> None:
        self.target = target
        self.deadline = deadline
        self.reconnect = reconnect or ReconnectPolicy()
        credentials = channel_credentials(tls, ca_file)
        if channel is not None:
            self._channel = channel
        elif credentials is None:
            self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.OrderServiceStub(self._channel)
        self._metadata = auth_metadata(api_key)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _options(self, deadline: float | None) -> dict[str, Any]:
        return {"timeout": deadline or self.deadline, "metadata": self._metadata}

    def _error(self, error: grpc.RpcError) -> OrderServiceError:
        return OrderServiceError.from_rpc_error(error, self.target)

    def _ended_at(self, order_id: str, last_seq: int) -> bool:
        """True when the order is final and nothing after `last_seq` remains to be sent."""
        try:
            order = self.get(order_id)
        except OrderServiceError as e:
            if e.code == grpc.StatusCode.UNAVAILABLE:
                return False
            raise
        return order.status in TERMINAL_STATUSES and order.last_seq <= last_seq

    def execute(
        self,
        token_in: str,
        token_out: str,
        amount: str | Decimal | int,
        slippage_bps: int = 0,
        idempotency_key: str = "",
        *,
        order_type: str | pb.OrderType.ValueType | None = None,
        limit_price: str | Decimal | int = "",
        expires_at: datetime | None = None,
        max_price_impact_bps: int = 0,
        deadline: float | None = None,
    ) -> str:
        """Place an order (`amount` of `token_in` in whole tokens); returns its id once it is stored.

        A market order by default; `order_type="limit"` needs `limit_price` (token_out per token_in), and a limit
        or sniper order may carry `expires_at`. `max_price_impact_bps` bounds how far the order itself may move the
        price (0: the service's default, 1000 bps); past it the order is refused (FAILED_PRECONDITION,
        PRICE_IMPACT_TOO_HIGH)."""
        request = execute_request(
            token_in,
            token_out,
            amount,
            slippage_bps,
            idempotency_key,
            max_price_impact_bps,
            order_type=order_type,
            limit_price=limit_price,
            expires_at=expires_at,
        )
        try:
            return self._stub.ExecuteOrder(request, **self._options(deadline)).order_id
        except grpc.RpcError as e:
            raise self._error(e) from None

    def cancel(self, order_id: str, *, deadline: float | None = None) -> pb.Order:
        """Cancels an order that has not started executing (pending or open); returns it as it is now.

        FAILED_PRECONDITION (naming its status) once it executes or is final; a cancelled order comes back as is."""
        try:
            response = self._stub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), **self._options(deadline))
        except grpc.RpcError as e:
            raise self._error(e) from None
        return response.order

    def get(self, order_id: str, *, deadline: float | None = None) -> pb.Order:
        try:
            request = pb.GetOrderRequest(order_id=order_id)
            return self._stub.GetOrder(request, **self._options(deadline)).order
        except grpc.RpcError as e:
            raise self._error(e) from None

    def list(
        self,
        status: str | pb.OrderStatus.ValueType | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
        *,
        deadline: float | None = None,
    ) -> pb.ListOrdersResponse:
        """One page of orders, newest first; pass `next_page_token` back as `page_token` for the next."""
        try:
            request = list_request(status, page_size, page_token)
            return self._stub.ListOrders(request, **self._options(deadline))
        except grpc.RpcError as e:
            raise self._error(e) from None

    def quote(
        self,
        token_in: str,
        token_out: str,
        amount: str | Decimal | int,
        slippage_bps: int = 0,
        *,
        deadline: float | None = None,
    ) -> pb.GetQuoteResponse:
        try:
            return self._stub.GetQuote(
                quote_request(token_in, token_out, amount, slippage_bps), **self._options(deadline)
            )
        except grpc.RpcError as e:
            raise self._error(e) from None

    def watch(self, order_id: str, from_seq: int = 0) -> Iterator[pb.OrderEvent]:
        """The order's events with seq > `from_seq`, in order, ending after the terminal event.

        When the stream breaks with UNAVAILABLE (server restart, network) it is reopened from the last seq
        seen, and any event at or below it is dropped: no gap, no duplicate. It gives up, raising the last
        error, after `reconnect.give_up_after_s` without an event. Closing the iterator cancels the stream.
        """
        last_seq = from_seq
        backoff = self.reconnect.delays()
        last_progress = time.monotonic()
        while True:
            call = self._stub.WatchOrder(
                pb.WatchOrderRequest(order_id=order_id, from_seq=last_seq), metadata=self._metadata
            )
            try:
                for response in call:
                    event = response.event
                    if event.seq <= last_seq:
                        continue
                    last_seq = event.seq
                    backoff.reset()
                    last_progress = time.monotonic()
                    yield event
                    if event.status in TERMINAL_STATUSES:
                        return
                # Ended without a terminal event: either from_seq was already past the end, or the server
                # is shutting down (then resume like a drop).
                if self._ended_at(order_id, last_seq):
                    return
                failure = OrderServiceError(grpc.StatusCode.UNAVAILABLE, "stream ended early", self.target)
            except grpc.RpcError as e:
                failure = self._error(e)
                if failure.code != grpc.StatusCode.UNAVAILABLE:
                    raise failure from None
            finally:
                call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped
            delay = backoff.next_delay()
            if time.monotonic() + delay - last_progress > self.reconnect.give_up_after_s:
                raise failure
            time.sleep(delay)
