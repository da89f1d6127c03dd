"""Runs the bridge in this test process: a real uvicorn on a real port, on its own thread and event loop.

The listening socket is bound before the thread starts, so a client may connect at once: the kernel queues the
connection until uvicorn, after the app's startup, accepts it. `wait_healthy` is for tests
that need the service reachable too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from server.bridge import BridgeServer, bridge_config


class BridgeThread:
    """`auth_required` is off by default, like the order-focused stacks (AUTH=optional); the accounts tests set it,
    and `config` passes TLS settings through to `bridge_config`."""

    def __init__(
        self, grpc_target: str, cors_origins: list[str] | None = None, *, auth_required: bool = False, **config: Any
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port: int = self.sock.getsockname()[1]
        self.scheme = "https" if config.get("tls_cert_file") else "http"
        uvicorn_config = bridge_config(
            grpc_target, cors_origins or [], "127.0.0.1", self.port, auth_required=auth_required, **config
        )
        uvicorn_config.log_level = "warning"
        self.server = BridgeServer(uvicorn_config)
        self.thread = threading.Thread(target=self._run, name=f"bridge-{self.port}", daemon=True)
        self.error: BaseException | None = None

    @property
    def http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def start(self) -> BridgeThread:
        self.thread.start()
        return self

    def wait_healthy(self, within: float = 30) -> BridgeThread:
        """Returns once `/health` says the bridge reaches the service. A page that loads earlier sees its first
        requests answered 503 while the bridge's channel still connects, and logs them as console errors."""
        deadline = time.monotonic() + within
        while True:
            last = http("GET", f"{self.http}/health", timeout=5)
            if last.status == 200:
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"the bridge was not healthy within {within} s: {last.status} {last.body!r}")
            time.sleep(0.05)  # a probe of another process's state: nothing here can be awaited

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the bridge did not shut down within 20 s"
        if self.error is not None:
            raise self.error


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15,
) -> HttpResult:
    """One real HTTP request (urllib); error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if body is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


async def ahttp(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> HttpResult:
    """`http` without blocking the test's event loop."""
    return await asyncio.to_thread(http, method, url, body, headers)


def post_json(url: str, payload: Any) -> HttpResult:
    return http("POST", url, json.dumps(payload).encode())
