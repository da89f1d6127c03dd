"""The system under test: real Redis and PostgreSQL (embedded unless TEST_* URLs are given), and real server and
worker processes started with `python -m server.cli`, exactly as operators start them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.v1 import order_service_pb2 as pb
from server.orphans import child_env
from tests.scratch_stores import ScratchStores, free_port
from workers.readiness import NOTIFY_SOCKET

ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OrderService"].full_name


class Stores(ScratchStores):
    """The tests' stores: TEST_REDIS_URL / TEST_DATABASE_URL when given, embedded servers otherwise."""

    @classmethod
    def start_for_tests(cls, *, embedded_only: bool = False) -> Stores:
        """`embedded_only`: always embedded, for tests that stop and restart the servers."""
        redis_url = None if embedded_only else os.environ.get("TEST_REDIS_URL")
        pg_url = None if embedded_only else os.environ.get("TEST_DATABASE_URL")
        tmp = Path(tempfile.mkdtemp(prefix="oe-test-"))
        return cls.start(tmp, redis_url=redis_url, postgres_url=pg_url, prefix="oe_test")


@dataclass
class Stack:
    """A running system: one gRPC server and one worker process on their own database and queue."""

    grpc_target: str
    redis_url: str
    database_url: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="oe-logs-")))

    @classmethod
    def start(cls, stores: Stores, **overrides: str) -> Stack:
        """`overrides` are environment variables (BROKER_URL=amqp://... for RabbitMQ)."""
        return cls.launch(stores, overrides)

    @classmethod
    def launch(cls, stores: Stores, overrides: dict[str, str], *, worker: bool = True) -> Stack:
        """`worker=False` starts the server alone: the test spawns the worker when it wants one."""
        redis_url, database_url = stores.new_redis(), stores.new_database()
        port = free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "GRPC_PORT": str(port),
            "GRPC_HOST": "127.0.0.1",
            "MARKET_LATENCY": "zero",
            "MARKET_FAILURE_RATE": "0",
            "MARKET_SEED": "7",
            # A market launch lists a new token whenever a test spans a 5-minute boundary; tests that compare the
            # market with a replay or decode every pool by the built-in tokens would fail at random. Off unless
            # a test sets it.
            "MARKET_LAUNCH_SECONDS": "0",
            "RETRY_MIN_BACKOFF_MS": "20",
            "RETRY_MAX_BACKOFF_MS": "80",
            "WORKER_THREADS": "8",
            # Most tests are about orders, not callers: they call without a key, as the `default` account, and
            # place more orders a minute than a caller may. tests/integration/test_accounts*.py test the callers.
            "AUTH": "optional",
            "ORDERS_PER_MINUTE": "1000000",
            **overrides,
        }
        stack = cls(grpc_target=f"127.0.0.1:{port}", redis_url=redis_url, database_url=database_url, env=env)
        subprocess.run(
            [sys.executable, "-m", "server.cli", "migrate"],
            env=env,
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        stack.spawn("serve", "serve")
        with stack.readiness("worker") as ready:
            if worker:
                stack.spawn("worker", "worker", env=ready.env)
            stack.wait_serving()
            if worker:
                ready.wait()
        return stack

    def spawn_ready(self, name: str, *args: str, timeout: float = 30) -> subprocess.Popen[bytes]:
        """Spawns a part and returns once it says it serves (for a worker: its consumers run), so that a test
        which needs the part's work never races its start."""
        with self.readiness(name, timeout) as ready:
            proc = self.spawn(name, *args, env=ready.env)
            ready.wait()
        return proc

    def readiness(self, name: str, timeout: float = 30) -> Readiness:
        return Readiness(self, name, timeout)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            env=child_env(env or self.env),
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        self.processes[name] = proc
        return proc

    def wait_serving(self, target: str | None = None, timeout: float = 30) -> None:
        """Blocks until the gRPC server accepts calls: its port is bound and its health says SERVING (which needs
        no key, whatever AUTH is)."""
        with self.channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=timeout)
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=timeout
            )
            for answer in watch:
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    watch.cancel()
                    return

    def channel(self, target: str | None = None) -> grpc.Channel:
        """A channel to the stack's server: TLS trusting GRPC_TARGET_CA_FILE when the stack serves TLS."""
        ca_file = self.env.get("GRPC_TARGET_CA_FILE")
        if ca_file:
            credentials = grpc.ssl_channel_credentials(Path(ca_file).read_bytes())
            return grpc.secure_channel(target or self.grpc_target, credentials)
        return grpc.insecure_channel(target or self.grpc_target)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Readiness:
    """The socket a spawned part says READY=1 on (workers/readiness.py, as systemd's NOTIFY_SOCKET): waiting on it
    is waiting for the part itself, with no polling."""

    def __init__(self, stack: Stack, name: str, timeout: float) -> None:
        self.stack, self.name, self.timeout = stack, name, timeout
        self.path = stack.logs / f"{name}.notify"
        self.env = {**stack.env, NOTIFY_SOCKET: str(self.path)}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def __enter__(self) -> Readiness:
        self.path.unlink(missing_ok=True)
        self.sock.bind(str(self.path))
        self.sock.settimeout(self.timeout)
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)

    def wait(self) -> None:
        try:
            message = self.sock.recv(4096)
        except TimeoutError as e:
            tail = self.stack.log_tail(self.name)
            raise RuntimeError(f"{self.name} did not say READY within {self.timeout} s; its log ends:\n{tail}") from e
        assert message.startswith(b"READY=1"), message
