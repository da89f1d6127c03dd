"""The bridge's HTTP handlers: each reads its input, makes one gRPC call and answers JSON.

Errors are not caught here: `EXCEPTION_HANDLERS` (installed by `app.create_app`) turns bad input and failed RPCs
into JSON error responses, once for every endpoint.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from client.async_client import AsyncOrderClient
from client.errors import OrderServiceError
from client.json_format import order_json, order_list_json, quote_json
from client.options import SERVICE_NAME
from server.bridge.parsing import (
    MAX_BODY_BYTES,
    InputError,
    ascii_int,
    load_json,
    parse_list_query,
    parse_order,
    parse_quote_query,
    service_error_body,
    service_error_headers,
)

HEALTH_DEADLINE_S = 2.0
ROUTING_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def order_client(request: Request) -> AsyncOrderClient:
    """The service's client, calling with the key this request came with (see `credentials.ApiKeys`)."""
    client: AsyncOrderClient = request.app.state.client
    return client.with_api_key(request.state.api_key)


async def input_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OrderServiceError)
    status, body = service_error_body(exc)
    return JSONResponse(body, status_code=status, headers=service_error_headers(exc))


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 past MAX_BODY_BYTES without reading the rest."""
    declared = ascii_int(request.headers.get("content-length", ""))
    if declared is not None and declared > MAX_BODY_BYTES:
        raise InputError(f"body larger than {MAX_BODY_BYTES} bytes", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise InputError(f"body larger than {MAX_BODY_BYTES} bytes", status=413)
    return bytes(body)


async def execute_order(request: Request) -> Response:
    """POST /api/orders/execute -> {"orderId": ...}"""
    order = parse_order(load_json(await read_body(request)))
    order_id = await order_client(request).execute(
        order.token_in,
        order.token_out,
        order.amount,
        order.slippage_bps,
        order.idempotency_key,
        max_price_impact_bps=order.max_price_impact_bps,
        **order.execute_kwargs(),
    )
    return JSONResponse({"orderId": order_id})


async def cancel_order(request: Request) -> Response:
    """POST /api/orders/{orderId}/cancel -> the order as it is now (409 once it executes or is final)"""
    order = await order_client(request).cancel(request.path_params["orderId"])
    return JSONResponse(order_json(order))


async def get_order(request: Request) -> Response:
    """GET /api/orders/{orderId}"""
    order = await order_client(request).get(request.path_params["orderId"])
    return JSONResponse(order_json(order))


async def list_orders(request: Request) -> Response:
    """GET /api/orders?status=&limit=&pageToken= -> {"orders": [...], "nextPageToken": ...}"""
    query = parse_list_query(dict(request.query_params))
    page = await order_client(request).list(query.status, query.limit, query.page_token)
    return JSONResponse(order_list_json(page))


async def get_quote(request: Request) -> Response:
    """GET /api/quote?tokenIn=&tokenOut=&amount=&slippageBps="""
    query = parse_quote_query(dict(request.query_params))
    quote = await order_client(request).quote(query.token_in, query.token_out, query.amount, query.slippage_bps)
    return JSONResponse(quote_json(quote))


async def _serving(stub: Any, service: str) -> bool:
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=HEALTH_DEADLINE_S)
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


async def health(request: Request) -> Response:
    """GET /health: 200 when the gRPC service says it is SERVING (grpc.health.v1), else 503."""
    stub = health_pb2_grpc.HealthStub(request.app.state.client.channel)  # health needs no key
    try:
        try:
            ok = await _serving(stub, SERVICE_NAME)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            ok = await _serving(stub, "")  # a server that only reports the overall status
    except grpc.aio.AioRpcError as e:
        return _unavailable(f"{e.code().name}: {e.details()}")
    return JSONResponse({"status": "ok"}) if ok else _unavailable("order service is not serving")


def _unavailable(why: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "error": why}, status_code=503)


async def routing_error(request: Request, exc: Exception) -> Response:
    """No such path, or not that method (Starlette's own refusals): the API's error shape, Allow kept on a 405."""
    assert isinstance(exc, HTTPException)
    body = {"error": exc.detail, "code": ROUTING_CODES.get(exc.status_code, "HTTP_ERROR"), "field": None}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


# Every error the API answers, mapped once: bad input, failed RPCs, and Starlette's own 404/405.
EXCEPTION_HANDLERS: dict[Any, Any] = {
    InputError: input_error,
    OrderServiceError: service_error,
    404: routing_error,
    405: routing_error,
}
