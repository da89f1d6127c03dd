"""Starts what the benchmark measures: Redis and PostgreSQL (embedded unless REDIS_URL / DATABASE_URL are given),
then the gRPC server, N worker processes and optionally the bridge, each `python -m server.cli ...` exactly as an
operator starts them, on free loopback ports with their data and logs in one temporary folder.

Every child gets PR_SET_PDEATHSIG (it dies with the benchmark) and `System.stop` / `Stores.stop` end them in order,
so neither Ctrl-C nor an exception leaves anything running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
import redis

from bench.procstat import descendants
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.orphans import child_env

ROOT = Path(__file__).resolve().parent.parent
REDIS_DATABASES = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stores:
    """One Redis and one PostgreSQL server. Each `System` gets a fresh database and a flushed Redis database."""

    redis_base: str
    postgres_admin: str
    tmp: Path
    embedded: bool
    _servers: list[Any] = field(default_factory=list)
    _databases: list[str] = field(default_factory=list)
    _next_redis_db: int = 1

    @classmethod
    def start(cls, tmp: Path) -> Stores:
        from server.embedded import EmbeddedPostgres, EmbeddedRedis

        redis_url, pg_url = os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")
        servers: list[Any] = []
        stores = cls(redis_base="", postgres_admin="", tmp=tmp, embedded=not (redis_url and pg_url), _servers=servers)
        try:
            if not redis_url:
                r = EmbeddedRedis(tmp / "redis", persist=False)
                servers.append(r)
                redis_url = r.start()
            if not pg_url:
                p = EmbeddedPostgres(tmp / "pg")
                servers.append(p)
                pg_url = p.start()
        except BaseException:
            stores.stop()
            raise
        stores.redis_base, stores.postgres_admin = redis_url, pg_url
        return stores

    def pids(self) -> dict[str, list[int]]:
        """The store servers' processes (embedded only: a given server may be on another host)."""
        out: dict[str, list[int]] = {}
        for server in self._servers:
            kind = type(server).__name__
            if kind == "EmbeddedRedis" and server.pid:
                out["redis"] = [int(server.pid)]
            elif kind == "EmbeddedPostgres":
                pid = _postmaster_pid(self.tmp / "pg")
                if pid:
                    out["postgres"] = [pid, *descendants(pid)]
        return out

    def new_database(self) -> str:
        name = f"oe_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.postgres_admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        parts = urlsplit(self.postgres_admin)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))

    def new_redis(self) -> str:
        db = self._next_redis_db
        self._next_redis_db = db % (REDIS_DATABASES - 1) + 1
        if self.redis_base.startswith("unix://"):
            sep = "&" if "?" in self.redis_base else "?"
            url = f"{self.redis_base}{sep}db={db}"
        else:
            parts = urlsplit(self.redis_base)
            url = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        return url

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.postgres_admin, autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._databases:
            self._databases.remove(name)

    def stop(self) -> None:
        if self._databases and self.postgres_admin:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(self.postgres_admin, autocommit=True) as conn,
            ):
                for name in self._databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._databases.clear()
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                server.stop()
        self._servers.clear()


def _postmaster_pid(data_dir: Path) -> int | None:
    for pidfile in data_dir.rglob("postmaster.pid"):
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().splitlines()[0])
    return None


@dataclass
class System:
    """One configuration of the engine: a gRPC server, `workers` worker processes and maybe a bridge."""

    stores: Stores
    env: dict[str, str]
    grpc_target: str
    logs: Path
    http_port: int | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        stores: Stores,
        *,
        latency: str,
        workers: int,
        threads: int | None = None,
        bridge: bool = False,
        start_workers: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> System:
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": stores.new_redis(),
            "DATABASE_URL": stores.new_database(),
            "GRPC_PORT": str(port),
            "GRPC_HOST": "127.0.0.1",
            "MARKET_LATENCY": latency,
            "MARKET_FAILURE_RATE": "0",
            "MARKET_SEED": "42",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **({"WORKER_THREADS": str(threads)} if threads else {}),
            **(extra_env or {}),
        }
        logs = stores.tmp / f"logs-{latency}-w{workers}-{uuid.uuid4().hex[:6]}"
        logs.mkdir(parents=True)
        system = cls(stores=stores, env=env, grpc_target=f"127.0.0.1:{port}", logs=logs)
        try:
            subprocess.run(
                [sys.executable, "-m", "server.cli", "migrate"],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            system.spawn("server", "serve")
            if start_workers:
                system.start_workers(workers)
            if bridge:
                system.start_bridge()
            system.wait_ready()
        except BaseException:
            system.stop()
            raise
        return system

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", *args],
                env=child_env(env or self.env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def start_workers(self, n: int) -> None:
        for i in range(n):
            self.spawn(f"worker-{i + 1}", "worker", "--processes", "1")

    def start_bridge(self) -> None:
        self.http_port = free_port()
        env = {**self.env, "HTTP_PORT": str(self.http_port), "HTTP_HOST": "127.0.0.1", "GRPC_TARGET": self.grpc_target}
        self.spawn("bridge", "bridge", env=env)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.grpc_target) as channel:
            while True:
                self._check_alive()
                try:
                    pb_grpc.OrderServiceStub(channel).ListOrders(pb.ListOrdersRequest(page_size=1), timeout=2)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"gRPC server not ready; log: {self.log_tail('server')}") from None
                    time.sleep(0.2)
        if self.http_port is not None:
            while True:
                self._check_alive()
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.http_port), 1):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"bridge not ready; log: {self.log_tail('bridge')}")
                time.sleep(0.2)
        self.wait_workers_ready(deadline - time.monotonic())

    def wait_workers_ready(self, timeout: float = 60) -> None:
        """A worker is ready once it has declared its queue and started consuming: its log says so at INFO,
        which the benchmark silences, so wait for its threads instead (Dramatiq starts them after booting)."""
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            if not name.startswith("worker"):
                continue
            while _threads(proc.pid) < 4:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready; log: {self.log_tail(name)}")
                time.sleep(0.1)
        time.sleep(0.5)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")

    def pids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {"server": [], "workers": [], "bridge": []}
        for name, proc in self.procs.items():
            if proc.poll() is None:
                key = "workers" if name.startswith("worker") else name
                out.setdefault(key, []).extend([proc.pid, *descendants(proc.pid)])
        return {**out, **self.stores.pids()}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        self.stores.drop_database(self.env["DATABASE_URL"])


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def make_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="oe-bench-"))


def remove_tmp(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
