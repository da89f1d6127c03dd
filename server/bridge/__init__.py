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
from server.bridge.credentials import redact_access_tokens_in_logs
from workers.config import Settings
from workers.readiness import notify_ready

__all__ = ["BridgeServer", "bridge_config", "create_app", "serve_bridge", "settings_config"]

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
    auth_required: bool = True,
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    grpc_tls: bool = False,
    grpc_ca_file: str | None = None,
) -> uvicorn.Config:
    """uvicorn serving the bridge; TLS-only when a certificate and key are given."""
    app = create_app(
        grpc_target,
        cors_origins,
        metrics_targets or [],
        metrics=metrics,
        auth_required=auth_required,
        grpc_tls=grpc_tls,
        grpc_ca_file=grpc_ca_file,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        timeout_graceful_shutdown=5,
        log_level="info",
        log_config=None,  # uvicorn's lines go through the process's own handler (LOG_FORMAT)
        access_log=False,
        server_header=False,
        ssl_certfile=tls_cert_file,
        ssl_keyfile=tls_key_file,
    )
    redact_access_tokens_in_logs()  # after uvicorn.Config, which configures its loggers
    return config


def settings_config(
    settings: Settings, host: str, port: int, metrics_targets: list[str] | None = None
) -> uvicorn.Config:
    """The bridge as Settings describe it (AUTH, HTTP_TLS_*, GRPC_TARGET_TLS / GRPC_TARGET_CA_FILE, metrics)."""
    return bridge_config(
        settings.target,
        settings.cors_origin_list,
        host,
        port,
        metrics_targets,
        metrics=settings.bridge_metrics_port > 0,
        auth_required=settings.auth_required,
        tls_cert_file=settings.http_tls_cert_file,
        tls_key_file=settings.http_tls_key_file,
        grpc_tls=settings.grpc_target_tls or bool(settings.grpc_tls_cert_file),
        grpc_ca_file=settings.grpc_target_ca_file or settings.grpc_tls_cert_file,
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
    config = settings_config(settings, settings.http_host, settings.http_port, targets)
    scheme = "https" if settings.http_tls_cert_file else "http"
    log.info(
        "bridge on %s://%s:%d/ for gRPC %s (AUTH=%s)",
        scheme,
        settings.http_host,
        settings.http_port,
        settings.target,
        settings.auth,
    )
    sock = bind_socket(settings.http_host, settings.http_port)
    try:
        await run_until_cancelled(BridgeServer(config), sockets=[sock])
    finally:
        sock.close()
