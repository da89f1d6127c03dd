"""Where a caller's API key travels, in both directions: `authorization: Bearer <key>` (gRPC metadata, an HTTP
header) or, for browsers' WebSockets, `?access_token=<key>`. The clients write it (`auth_metadata`); the
service's interceptor and the bridge read it (`bearer_token`, `query_token`). Nothing is looked up here."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

SCHEME = "bearer"
Metadata = tuple[tuple[str, str], ...]
# Far longer than any key; what is longer is refused before it is looked at further.
MAX_CREDENTIAL_CHARS = 512


class Reason(StrEnum):
    """Stable `google.rpc.ErrorInfo` reasons of an UNAUTHENTICATED answer."""

    KEY_MISSING = "KEY_MISSING"
    KEY_MALFORMED = "KEY_MALFORMED"
    KEY_INVALID = "KEY_INVALID"
    KEY_REVOKED = "KEY_REVOKED"


class Unauthenticated(Exception):
    """The call carries no usable key: UNAUTHENTICATED, HTTP 401, WebSocket close 4401."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def auth_metadata(api_key: str | None) -> Metadata | None:
    """What every call of a client carries: `authorization: Bearer <api_key>`, or nothing without a key."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else None


def bearer_token(values: Sequence[str | bytes]) -> str | None:
    """The key of the `authorization` values a call carries: None when there are none.

    Several values, another scheme, or a value that is not printable text are refused rather than guessed at.
    """
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated(Reason.KEY_MALFORMED, f"send one authorization value, not {len(values)}")
    value = values[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise Unauthenticated(Reason.KEY_MALFORMED, "the authorization value is not ASCII text") from None
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise Unauthenticated(Reason.KEY_MALFORMED, f"the authorization value is longer than {MAX_CREDENTIAL_CHARS}")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != SCHEME or not token.strip():
        raise Unauthenticated(Reason.KEY_MALFORMED, "the authorization value must be 'Bearer <api key>'")
    return token.strip()


def query_token(value: str | None) -> str | None:
    """`?access_token=` of a browser's WebSocket (browsers cannot set headers on one)."""
    if value is None:
        return None
    if len(value) > MAX_CREDENTIAL_CHARS or not value:
        raise Unauthenticated(Reason.KEY_MALFORMED, "access_token is not an API key")
    return value
