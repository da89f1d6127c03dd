"""`orderengine dev` (what `make run` runs) as a newcomer meets it: the banner appears once every part serves, and
a second one in the same clone refuses at once, naming the first, without touching its stores."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import TERMINAL
from tests.scratch_stores import free_port

ORDERENGINE = str(Path(sys.executable).with_name("orderengine"))
BANNER = "orderengine is up"


@dataclass
class Dev:
    proc: subprocess.Popen[str]
    data: Path
    grpc_port: int
    http_port: int
    output: list[str]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def dev_env(data: Path, grpc_port: int, http_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    return {
        **env,
        "DATA_DIR": str(data),
        "GRPC_PORT": str(grpc_port),
        "HTTP_PORT": str(http_port),
        # Free ports, not dev's defaults: other runs on this machine may hold 9400 and its neighbours.
        "SERVE_METRICS_PORT": str(free_port()),
        "BRIDGE_METRICS_PORT": str(free_port()),
        "WORKER_METRICS_PORT": str(free_port()),
        "MARKET_LATENCY": "zero",
        "LOG_LEVEL": "WARNING",
    }


def read_until(proc: subprocess.Popen[str], text: str, output: list[str], within: float = 90) -> None:
    """Reads the process's output lines until one contains `text` (fails if it exits or time runs out).

    The lines are read on a thread: `select` on a buffered pipe misses lines already in Python's buffer (the banner
    starts with an empty line, so its text arrived with that line and sat unseen behind a readline)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")  # end of output: the process exited

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            pytest.fail(f"orderengine dev exited ({proc.wait()}) before saying {text!r}:\n{''.join(output)}")
        output.append(line)
        if text in line:
            return
    pytest.fail(f"no {text!r} within {within} s:\n{''.join(output)}")


@pytest.fixture(scope="module")
def first_dev() -> Iterator[Dev]:
    data = Path(tempfile.mkdtemp(prefix="oe-dev-"))
    grpc_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [ORDERENGINE, "dev"],
        env=dev_env(data, grpc_port, http_port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = Dev(proc, data, grpc_port, http_port, [])
    try:
        read_until(proc, BANNER, dev.output)
        yield dev
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def place_and_watch(target: str) -> list[int]:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.OrderServiceStub(channel)
        order_id = stub.ExecuteOrder(
            pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="0.1"), timeout=10
        ).order_id
        events = [r.event for r in stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), timeout=30)]
    assert events[-1].status in TERMINAL
    return [e.status for e in events]


def test_when_the_banner_appears_every_part_serves(first_dev: Dev) -> None:
    # No waiting after the banner: gRPC, the workers and the bridge all answer at once.
    assert place_and_watch(first_dev.target)[-1] == pb.ORDER_STATUS_CONFIRMED
    with urllib.request.urlopen(f"http://127.0.0.1:{first_dev.http_port}/health", timeout=5) as answer:
        assert json.load(answer) == {"status": "ok"}


def test_a_second_dev_in_the_same_clone_refuses_and_leaves_the_first_running(first_dev: Dev) -> None:
    for grpc_port, http_port in ((first_dev.grpc_port, first_dev.http_port), (free_port(), free_port())):
        second = subprocess.run(
            [ORDERENGINE, "dev"],
            env=dev_env(first_dev.data, grpc_port, http_port),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        said = second.stderr
        assert "already running" in said and f"pid {first_dev.proc.pid}" in said, said
        assert f"gRPC port {first_dev.grpc_port}" in said and f"HTTP port {first_dev.http_port}" in said
        assert str(first_dev.data) in said
        assert BANNER not in second.stdout
        assert "stopped a stale" not in said
    # The first instance's stores were not touched: it still takes, runs and streams an order.
    assert place_and_watch(first_dev.target)[-1] == pb.ORDER_STATUS_CONFIRMED
    assert first_dev.proc.poll() is None


def test_a_dev_elsewhere_on_the_same_port_refuses_naming_the_port(first_dev: Dev) -> None:
    other = Path(tempfile.mkdtemp(prefix="oe-dev-"))
    second = subprocess.run(
        [ORDERENGINE, "dev"],
        env=dev_env(other, first_dev.grpc_port, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"port {first_dev.grpc_port} (GRPC_PORT) is already in use" in second.stderr
    assert not (other / "redis").exists()  # refused before starting anything
    shutil.rmtree(other, ignore_errors=True)
    assert place_and_watch(first_dev.target)[-1] == pb.ORDER_STATUS_CONFIRMED
