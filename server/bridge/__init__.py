"""The HTTP/WebSocket bridge for browsers, a gRPC client of OrderService (SPEC section 4).

`serve_bridge(settings)` runs it until cancelled; `create_app` (in `app`) builds the ASGI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn

from server.bridge.app import create_app
from workers.config import Settings
from workers.readiness import notify_ready

__all__ = ["BridgeServer", "bridge_config", "create_app", "serve_bridge"]

log = logging.getLogger(__name__)

# WebSocket messages from browsers are orders (a few hundred bytes); refuse anything far larger.
WS_MAX_MESSAGE_BYTES = 64 * 1024


class BridgeServer(uvicorn.Server):
    """uvicorn without its signal handlers (whoever runs the bridge owns SIGINT/SIGTERM and cancels it) that says
    when it serves (`workers.readiness`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            notify_ready("bridge")  # a supervisor waiting for every part (`orderengine dev`) hears it serves


def bridge_config(
    grpc_target: str,
    cors_origins: list[str],
    host: str,
    port: int,
    metrics_targets: list[str] | None = None,
    *,
    metrics: bool = False,
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(grpc_target, cors_origins, metrics_targets or [], metrics=metrics),
        host=host,
        port=port,
        lifespan="on",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        timeout_graceful_shutdown=5,
        log_level="info",
        log_config=None,  # uvicorn's lines go through the process's own handler (LOG_FORMAT)
        access_log=False,
        server_header=False,
    )


async def run_until_cancelled(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
    """Serve until the awaiting task is cancelled, then shut down cleanly (sockets and channel closed)."""
    task = asyncio.create_task(server.serve(sockets=sockets), name="bridge-uvicorn")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Shut down fully (open sockets closed, lifespan shutdown closes the gRPC channel) even when the
        # caller cancels again meanwhile (SIGINT to the process group and SIGTERM from a supervisor).
        server.should_exit = True
        while not task.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)
        raise
    if not server.started:
        raise RuntimeError("bridge failed to start")


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening address, bound here so a busy port is an OSError for the caller (uvicorn would exit)."""
    host = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def serve_bridge(settings: Settings) -> None:
    """Serve the bridge on HTTP_HOST:HTTP_PORT for the gRPC service at settings.target until cancelled."""
    targets = [t.strip() for t in settings.metrics_targets.split(",") if t.strip()]
    config = bridge_config(
        settings.target,
        settings.cors_origin_list,
        settings.http_host,
        settings.http_port,
        targets,
        metrics=settings.bridge_metrics_port > 0,
    )
    log.info("bridge on http://%s:%d/ for gRPC %s", settings.http_host, settings.http_port, settings.target)
    sock = bind_socket(settings.http_host, settings.http_port)
    try:
        await run_until_cancelled(BridgeServer(config), sockets=[sock])
    finally:
        sock.close()
