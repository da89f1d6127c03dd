"""The one exception the clients raise for a failed RPC, with the gRPC status and the field it names."""

from __future__ import annotations

import re

import grpc

# The service names the offending field at the start of the details: "amount: must be positive".
_FIELD_PREFIX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*:\s")
# Words grpc core uses when the transport, not the service, produced UNAVAILABLE.
_TRANSPORT_MARKERS = (
    "failed to connect",
    "connection refused",
    "connection reset",
    "socket closed",
    "dns resolution failed",
    "connection attempt timed out",
    "goaway",
    "broken pipe",
    "endpoint closing",
)


class OrderServiceError(Exception):
    """An RPC to the order service failed.

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        details: the service's message.
        field: for INVALID_ARGUMENT, the request field the message starts with (proto name, e.g.
            ``amount`` in "amount: must be positive"), if any.
        target: the address the client was talking to.
    """

    def __init__(self, code: grpc.StatusCode, details: str, target: str = "") -> None:
        self.code = code
        self.details = details
        self.target = target
        match = _FIELD_PREFIX.match(details) if code == grpc.StatusCode.INVALID_ARGUMENT else None
        self.field: str | None = match.group(1) if match else None
        super().__init__(self.one_line())

    @property
    def is_connection_failure(self) -> bool:
        """UNAVAILABLE raised by the channel (nothing listening, connection dropped), not by the service."""
        if self.code != grpc.StatusCode.UNAVAILABLE:
            return False
        text = self.details.lower()
        return not text or any(marker in text for marker in _TRANSPORT_MARKERS)

    @property
    def code_name(self) -> str:
        return str(self.code.name)

    def one_line(self) -> str:
        """A message fit for one line of a terminal, e.g. ``INVALID_ARGUMENT: amount: must be positive``."""
        details = " ".join(self.details.split())
        if self.is_connection_failure:
            return f"cannot reach {self.target or 'the order service'} (UNAVAILABLE)"
        return f"{self.code_name}: {details}" if details else self.code_name

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, target: str = "") -> OrderServiceError:
        """Wrap what grpc raised: a sync ``grpc.Call`` error or a ``grpc.aio.AioRpcError``."""
        code = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else None
        if isinstance(error, grpc.aio.AioRpcError):
            code, details = error.code(), error.details()
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", target)
