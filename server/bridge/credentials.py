"""The bridge's one reading of a caller's API key: `Authorization: Bearer <key>` on any request, or
`?access_token=<key>` on a WebSocket (browsers cannot set headers on one).

The bridge does not judge keys: it forwards the key with the call to the service, which refuses a wrong,
malformed or revoked one (UNAUTHENTICATED -> 401 / close 4401). It refuses by itself only what it can see:
a malformed `Authorization` value, and, when its own AUTH is `required`, a request with no key at all.
`access_token` values are redacted from every uvicorn log line.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from client.credentials import Reason, Unauthenticated, bearer_token, query_token

CLOSE_UNAUTHENTICATED = 4401
# The order API needs a key; the page, its assets, /health, /openapi.json and the system-wide /api/metrics of the
# page's charts (no account's data) do not.
GUARDED_PREFIXES = ("/api/orders", "/api/quote", "/ws/")
_TOKEN_IN_TEXT = re.compile(r"(access_token=)[^&\s\"']*", re.IGNORECASE)


def unauthenticated_body(message: str, reason: str) -> dict[str, Any]:
    return {"error": message, "code": "UNAUTHENTICATED", "reason": reason, "field": None}


class ApiKeys:
    """ASGI middleware: puts the caller's key (or None) in `scope["state"]["api_key"]` for the handlers."""

    def __init__(self, app: ASGIApp, *, required: bool) -> None:
        self.app = app
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(GUARDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            token = self._token(scope)
            if token is None and self.required:
                raise Unauthenticated(
                    Reason.KEY_MISSING,
                    "an API key is required: send 'Authorization: Bearer <api key>' (or ?access_token= on a WebSocket)",
                )
        except Unauthenticated as exc:
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["api_key"] = token
        await self.app(scope, receive, send)

    @staticmethod
    def _token(scope: Scope) -> str | None:
        headers = [value for name, value in scope["headers"] if name == b"authorization"]
        if headers:
            return bearer_token(headers)
        if scope["type"] == "websocket":
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
            if values:
                if len(values) > 1:
                    return bearer_token(values)  # refused the same way as several headers
                return query_token(values[0])
        return None


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Unauthenticated) -> None:
    if scope["type"] == "websocket":
        message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        reason = f"unauthenticated: {exc.message}".encode()[:123].decode(errors="ignore")
        await send({"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED, "reason": reason})
        return
    body = json.dumps(unauthenticated_body(exc.message, exc.reason.value)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="orderengine"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RedactAccessTokens(logging.Filter):
    """Rewrites `access_token=<key>` to `access_token=<redacted>` in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_TEXT.sub(r"\1<redacted>", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_TEXT.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_access_tokens_in_logs() -> None:
    """Installs the redaction on the loggers that print request paths (uvicorn's)."""
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactAccessTokens) for f in logger.filters):
            logger.addFilter(RedactAccessTokens())
