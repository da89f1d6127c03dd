"""Typed Python clients of the order service (`OrderClient`, `AsyncOrderClient`) and the `orderctl` CLI.

Depends only on grpc and the generated stubs, never on `server` or `workers`.
"""

from client.async_client import AsyncOrderClient
from client.errors import (
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    OrderServiceError,
    RateLimitedError,
    UnauthenticatedError,
)
from client.options import DEFAULT_DEADLINE_S, DEFAULT_TARGET, ReconnectPolicy
from client.status import OrderStatus
from client.sync_client import OrderClient

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DEFAULT_TARGET",
    "AsyncOrderClient",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "OrderClient",
    "OrderServiceError",
    "OrderStatus",
    "RateLimitedError",
    "ReconnectPolicy",
    "UnauthenticatedError",
]
