"""The exceptions the clients raise for a failed RPC, with what the service said in the `google.rpc.Status` model:
the stable reason, the bad fields, the wait before a retry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Services that predate google.rpc.BadRequest name the field at the start of the details: "amount: must be ...".
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
    "ssl",
    "handshake",
)


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class StatusDetails:
    """What a `google.rpc.Status` carried beyond its code and message."""

    reason: str | None = None
    metadata: dict[str, str] | None = None
    violations: tuple[FieldViolation, ...] = ()
    retry_delay_s: float | None = None


def status_details(trailing_metadata: Any) -> StatusDetails:
    """The ErrorInfo, BadRequest and RetryInfo of a failed call's trailing metadata (empty when absent)."""
    blob = next((value for key, value in trailing_metadata or () if key == STATUS_DETAILS_KEY), None)
    if not isinstance(blob, bytes):
        return StatusDetails()
    try:
        status = status_pb2.Status.FromString(blob)
    except Exception:  # not ours to fail on: the plain code and message still stand
        return StatusDetails()
    reason: str | None = None
    metadata: dict[str, str] | None = None
    violations: list[FieldViolation] = []
    retry: float | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info_retry = error_details_pb2.RetryInfo()
            detail.Unpack(info_retry)
            retry = info_retry.retry_delay.ToNanoseconds() / 1e9
    return StatusDetails(reason=reason, metadata=metadata, violations=tuple(violations), retry_delay_s=retry)


class OrderServiceError(Exception):
    """An RPC to the order service failed.

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        details: the service's message.
        reason: the stable reason of the refusal (``google.rpc.ErrorInfo``), e.g. ``INVALID_AMOUNT``,
            ``RATE_LIMITED``, ``KEY_REVOKED``, ``ORDER_NOT_FOUND``; None when the service sent none.
        violations: for INVALID_ARGUMENT, one `FieldViolation` per bad request field (``google.rpc.BadRequest``).
        field: the first bad field's proto name (e.g. ``amount``), if any.
        retry_delay_s: how long to wait before retrying (``google.rpc.RetryInfo``), e.g. when rate limited.
        target: the address the client was talking to.
    """

    def __init__(
        self, code: grpc.StatusCode, details: str, target: str = "", extra: StatusDetails | None = None
    ) -> None:
        extra = extra or StatusDetails()
        self.code = code
        self.details = details
        self.target = target
        self.reason = extra.reason
        self.metadata = extra.metadata or {}
        self.retry_delay_s = extra.retry_delay_s
        self.violations = extra.violations
        if not self.violations and code == grpc.StatusCode.INVALID_ARGUMENT:
            match = _FIELD_PREFIX.match(details)
            if match:
                self.violations = (FieldViolation(match.group(1), details[match.end() :]),)
        self.field: str | None = self.violations[0].field if self.violations else None
        super().__init__(self.one_line())

    @property
    def is_connection_failure(self) -> bool:
        """UNAVAILABLE raised by the channel (nothing listening, connection dropped), not by the service."""
        if self.code != grpc.StatusCode.UNAVAILABLE or self.reason:
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
        """Wrap what grpc raised (a sync ``grpc.Call`` error or a ``grpc.aio.AioRpcError``) in the class its code
        calls for."""
        code: grpc.StatusCode | None = None
        details: str | None = None
        trailing: Any = None
        if isinstance(error, grpc.aio.AioRpcError | grpc.Call):
            code, details, trailing = error.code(), error.details(), error.trailing_metadata()
        code = code or grpc.StatusCode.UNKNOWN
        return _CLASS_OF.get(code, cls)(code, details or "", target, status_details(trailing))


class InvalidArgumentError(OrderServiceError):
    """INVALID_ARGUMENT: `violations` names each bad field."""


class NotFoundError(OrderServiceError):
    """NOT_FOUND: no such order for this caller (another account's order looks exactly like a missing one)."""


class UnauthenticatedError(OrderServiceError):
    """UNAUTHENTICATED: no API key where one is required, or a malformed, wrong or revoked one (`reason`)."""


class RateLimitedError(OrderServiceError):
    """RESOURCE_EXHAUSTED: the account's orders-per-minute limit; retry after `retry_delay_s`."""


_CLASS_OF: dict[grpc.StatusCode, type[OrderServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitedError,
}
