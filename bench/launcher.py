"""Starts what the benchmark measures: Redis and PostgreSQL (embedded unless REDIS_URL / DATABASE_URL are given),
then the gRPC server, N worker processes and optionally the bridge, each `python -m server.cli ...` exactly as an
operator starts them, on free loopback ports with their data and logs in one temporary folder.

Every child gets PR_SET_PDEATHSIG (it dies with the benchmark) and `System.stop` / `Stores.stop` end them in order,
so neither Ctrl-C nor an exception leaves anything running.
"""

from __future__ import annotations

import contextlib
import json
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

import grpc

from bench.procstat import descendants
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.orphans import child_env
from tests.scratch_stores import ScratchStores, free_port

ROOT = Path(__file__).resolve().parent.parent


class Stores(ScratchStores):
    """The benchmark's stores: REDIS_URL / DATABASE_URL when given, embedded servers otherwise."""

    @classmethod
    def start_for_bench(cls, tmp: Path) -> Stores:
        return cls.start(
            tmp, redis_url=os.environ.get("REDIS_URL"), postgres_url=os.environ.get("DATABASE_URL"), prefix="oe_bench"
        )

    def pids(self) -> dict[str, list[int]]:
        """The store servers' processes (embedded only: a given server may be on another host)."""
        out: dict[str, list[int]] = {}
        if self.redis_server is not None and self.redis_server.pid:
            out["redis"] = [int(self.redis_server.pid)]
        if self.postgres_server is not None:
            pid = _postmaster_pid(self.tmp / "pg")
            if pid:
                out["postgres"] = [pid, *descendants(pid)]
        return out


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
    # The key the load generator calls with: the engine runs with AUTH=required, as `serve` does by default.
    api_key: str | None = None
    server_processes: int = 1
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # A RabbitMQ node's process when BROKER_URL points at one the benchmark started (its CPU is counted).
    broker_pid: int | None = None

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
        server_processes: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> System:
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": stores.new_redis(flush=True),
            "DATABASE_URL": stores.new_database(),
            "GRPC_PORT": str(port),
            "GRPC_HOST": "127.0.0.1",
            "MARKET_LATENCY": latency,
            "MARKET_FAILURE_RATE": "0",
            "MARKET_SEED": "42",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "AUTH": "required",
            **({"WORKER_THREADS": str(threads)} if threads else {}),
            **(extra_env or {}),
        }
        logs = stores.tmp / f"logs-{latency}-w{workers}-{uuid.uuid4().hex[:6]}"
        logs.mkdir(parents=True)
        system = cls(
            stores=stores, env=env, grpc_target=f"127.0.0.1:{port}", logs=logs, server_processes=server_processes
        )
        try:
            subprocess.run(
                [sys.executable, "-m", "server.cli", "migrate"],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            system.api_key = _bench_account(env)
            system.spawn("server", "serve", "--processes", str(server_processes))
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
                    metadata = (("authorization", f"Bearer {self.api_key}"),) if self.api_key else None
                    pb_grpc.OrderServiceStub(channel).ListOrders(
                        pb.ListOrdersRequest(page_size=1), timeout=2, metadata=metadata
                    )
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"gRPC server not ready; log: {self.log_tail('server')}") from None
                    time.sleep(0.2)
        port = int(self.grpc_target.rsplit(":", 1)[1])
        while _listeners(port) < self.server_processes:  # each process of `serve --processes N` binds its own
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {_listeners(port)} server processes listen; log: {self.log_tail('server')}")
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
        if self.broker_pid is not None:
            out["rabbitmq"] = [self.broker_pid, *descendants(self.broker_pid)]
        return {**out, **self.stores.pids()}

    def server_pids(self) -> list[int]:
        """The serving processes: the one server, or the supervisor of `serve --processes N` and its children."""
        proc = self.procs["server"]
        return [proc.pid, *descendants(proc.pid)]

    def bridge_pids(self) -> list[int]:
        proc = self.procs.get("bridge")
        return [proc.pid] if proc is not None else []

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


def _bench_account(env: dict[str, str]) -> str:
    """An account whose limit the load never reaches: the limit is still checked on every order."""
    command = ["accounts", "create", "bench", "--orders-per-minute", str(10**9), "--json"]
    made = subprocess.run(
        [sys.executable, "-m", "server.cli", *command],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    api_key: str = json.loads(made.stdout)["api_key"]
    return api_key


def _listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port` (state 0A), plain or as gRPC binds them (IPv4-mapped IPv6)."""
    count = 0
    for table, host in (("tcp", "0100007F"), ("tcp6", "0000000000000000FFFF00000100007F")):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        local = f"{host}:{port:04X}"
        count += sum(1 for line in lines if line.split()[1] == local and line.split()[3] == "0A")
    return count


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def make_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="oe-bench-"))


def remove_tmp(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
