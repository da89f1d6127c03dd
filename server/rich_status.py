"""Refusals in the `google.rpc.Status` model (via grpcio-status), so typed clients read more than a message.

Every refusal carries a `google.rpc.ErrorInfo` whose `reason` is stable (`INVALID_AMOUNT`, `RATE_LIMITED`,
`KEY_REVOKED`, ...); bad input adds a `google.rpc.BadRequest` with one field violation per bad field; a rate
limit adds a `google.rpc.RetryInfo` with the wait. The status message stays readable on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "orderengine"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: grpc.StatusCode
    message: str
    reason: str
    # (field, description) pairs of a google.rpc.BadRequest.
    violations: Sequence[tuple[str, str]] = ()
    retry_delay_s: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def details(self) -> list[Any]:
        out: list[Any] = [error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)]
        if self.violations:
            out.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations
                    ]
                )
            )
        if self.retry_delay_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(max(int(self.retry_delay_s * 1e9), 0))
            out.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return out

    def to_status(self) -> grpc.Status:
        packed = []
        for detail in self.details():
            any_detail = any_pb2.Any()
            any_detail.Pack(detail)
            packed.append(any_detail)
        message = status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        return rpc_status.to_status(message)


async def abort(context: grpc.aio.ServicerContext[Any, Any], refusal: Refusal) -> NoReturn:
    status = refusal.to_status()
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: abort raises")
