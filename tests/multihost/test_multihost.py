"""Five hosts on one network, as SPEC section 5 promises ("any number of servers, bridges and workers on any number of
hosts share one Redis and one PostgreSQL"), on each broker:

  store   PostgreSQL, Redis (and RabbitMQ for the amqp variant), listening on the host's address
  api1    `orderengine serve` + `orderengine bridge`: orders are placed here
  api2    `orderengine serve` + `orderengine bridge`: the same orders are watched here, over gRPC and WebSocket
  wk1     `orderengine worker`: SIGKILLed (all its processes) while orders are in flight
  wk2     `orderengine worker`: its link is cut for CUT_S seconds right after, then restored

Every order must reach exactly one terminal state, settled at most once, each watcher seeing every event once and
in order. The figures are printed with the other fault tests' (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import websockets

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.orphans import child_env
from tests.fault.tools import (
    FAULT_ENV,
    FIGURES,
    EventCounter,
    assert_each_event_once,
    assert_nothing_lost,
    check_ledger,
    non_final,
    place_orders,
    watch_many,
)
from tests.multihost.netns import Network, why_no_netns
from tests.rabbitmq import server_script

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ["store", "api1", "api2", "wk1", "wk2"]
ORDERS = 80
WS_WATCHED = 10
CUT_S = 10.0
GRPC_PORT = 50051
HTTP_PORT = 3000

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def network() -> Iterator[None]:
    reason = why_no_netns()
    if reason:
        pytest.skip(reason)
    yield


class Hosts:
    """The processes of every host, started with `ip netns exec`, each host's in a process group of its own."""

    def __init__(self, net: Network, logs: Path) -> None:
        self.net = net
        self.logs = logs
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {h: [] for h in HOSTS}
        self.store: subprocess.Popen[str] | None = None

    def start_store(self, rabbitmq: bool) -> dict[str, str]:
        data = self.logs / "store"
        args = [sys.executable, "-m", "tests.multihost.store_host", self.net.address("store"), str(data)]
        self.store = subprocess.Popen(
            [*self.net.run("store"), *args, *(["--rabbitmq"] if rabbitmq else [])],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.logs / "store.log", "ab"),  # noqa: SIM115 - the process owns it
            text=True,
        )
        assert self.store.stdout is not None
        line = self.store.stdout.readline()  # one JSON line once every server listens (EOF if it failed)
        if not line:
            raise RuntimeError(f"the store host did not start: {(self.logs / 'store.log').read_text()[-2000:]}")
        return dict(json.loads(line))

    def spawn(self, host: str, env: dict[str, str], *args: str) -> None:
        log = open(self.logs / f"{host}.log", "ab")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(
            [*self.net.run(host), sys.executable, "-m", "server.cli", *args],
            env=child_env(env),
            cwd=ROOT,
            stdout=log,
            stderr=log,
            process_group=self.group(host),
        )
        self.procs[host].append(proc)

    def group(self, host: str) -> int:
        """A host's processes share one process group (the first one's), so the host can be killed at once."""
        return self.procs[host][0].pid if self.procs[host] else 0

    def kill(self, host: str) -> None:
        os.killpg(self.group(host), signal.SIGKILL)
        for proc in self.procs[host]:
            proc.wait()

    def stop(self) -> None:
        # The run is over and its stores are thrown away: no need to let anything drain.
        for host, procs in self.procs.items():
            if procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.group(host), signal.SIGKILL)
                for proc in procs:
                    proc.wait()
        if self.store is not None:
            with contextlib.suppress(Exception):
                assert self.store.stdin is not None
                self.store.stdin.close()  # the store host stops its servers
            try:
                self.store.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.store.kill()
                self.store.wait()

    def orders_handled(self, host: str) -> set[str]:
        """The orders whose events this host's processes committed (from their logs)."""
        text = (self.logs / f"{host}.log").read_text(errors="replace")
        return set(re.findall(r"order ([0-9a-f-]{36}): (?:routing|building|submitted|confirmed)", text))


def wait_serving(target: str, within: float = 60) -> None:
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=within)
        pb_grpc.OrderServiceStub(channel).ListOrders(pb.ListOrdersRequest(page_size=1), timeout=within)


async def wait_bridge(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            reader, writer = await asyncio.open_connection(*url.rsplit(":", 1))
            writer.write(b"GET /health HTTP/1.0\r\n\r\n")
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bridge at {url} did not answer /health")
        await asyncio.sleep(0.2)  # a process starting on another host: nothing to await but its port


async def watch_ws(address: str, order_id: str, within: float) -> tuple[list[dict[str, Any]], int | None]:
    """Every WebSocket message until the bridge closes the stream; (events, close code)."""
    async with asyncio.timeout(within), websockets.connect(f"ws://{address}/ws/orders/{order_id}") as ws:
        events = [json.loads(m) async for m in ws]
        return events, ws.close_code


async def run_variant(kind: str, net: Network, logs: Path) -> None:
    hosts = Hosts(net, logs)
    try:
        urls = await asyncio.to_thread(hosts.start_store, kind == "amqp")
        env = {
            **os.environ,
            **FAULT_ENV,
            "REDIS_URL": urls["redis"],
            "DATABASE_URL": urls["database"],
            "MARKET_SEED": "7",
            "MARKET_FAILURE_RATE": "0",
            "MARKET_DRIFT_SECONDS": "0",
            "WORKER_THREADS": "16",
            "GRPC_PORT": str(GRPC_PORT),
            "HTTP_PORT": str(HTTP_PORT),
            "AUTH": "optional",
        }
        env.pop("BROKER_URL", None)
        if kind == "amqp":
            env["BROKER_URL"] = urls["broker"]
        migrate = [*net.run("api1"), sys.executable, "-m", "server.cli", "migrate"]
        await asyncio.to_thread(subprocess.run, migrate, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        for api in ("api1", "api2"):
            here = {"GRPC_HOST": net.address(api), "HTTP_HOST": net.address(api)}
            hosts.spawn(api, env | here, "serve")
            hosts.spawn(api, env | here | {"GRPC_TARGET": f"{net.address(api)}:{GRPC_PORT}"}, "bridge")
        for wk in ("wk1", "wk2"):
            hosts.spawn(wk, env, "worker")
        api1, api2 = (f"{net.address(a)}:{GRPC_PORT}" for a in ("api1", "api2"))
        for target in (api1, api2):
            await asyncio.to_thread(wait_serving, target)
        await wait_bridge(f"{net.address('api2')}:{HTTP_PORT}")

        order_ids = await place_orders(api1, ORDERS)
        seen = EventCounter()
        grpc_watch = asyncio.create_task(watch_many(api2, order_ids, within=150, on_event=seen))
        ws_watch = asyncio.gather(
            *(watch_ws(f"{net.address('api2')}:{HTTP_PORT}", oid, 150) for oid in order_ids[:WS_WATCHED])
        )
        await seen.reached(ORDERS * 2)  # every order under way: placed, and most routed
        in_flight = non_final(urls["database"])

        killed_at = time.monotonic()
        hosts.kill("wk1")
        net.cut("wk2")
        await asyncio.sleep(CUT_S)  # the fault lasts this long: nothing to await
        net.restore("wk2")
        restored_at = time.monotonic()

        watched = await grpc_watch
        all_final_s = time.monotonic() - restored_at
        ws_results = await ws_watch

        check = check_ledger(urls["database"])
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
        assert_each_event_once(watched)
        by_id = {w.order_id: w for w in watched}
        for oid, (events, code) in zip(order_ids[:WS_WATCHED], ws_results, strict=True):
            assert code == 1000, (oid, code)
            assert [e["seq"] for e in events] == [e.seq for e in by_id[oid].events], oid
            assert events[-1]["status"] == "confirmed", events[-1]
        took = {wk: len(hosts.orders_handled(wk)) for wk in ("wk1", "wk2")}
        assert took["wk1"] > 0 and took["wk2"] > 0, took  # both worker hosts took work
        FIGURES[f"multi-host, {'RabbitMQ' if kind == 'amqp' else 'Redis'} broker"] = {
            "orders": ORDERS,
            "in flight at kill": in_flight,
            "orders worked on by wk1/wk2": f"{took['wk1']}/{took['wk2']}",
            "confirmed": check.confirmed,
            "lost": check.non_final,
            "settled twice": check.double_settled,
            "watched to the end on api2 (gRPC/WebSocket)": f"{len(watched)}/{len(ws_results)}",
            f"all final after the {CUT_S:.0f} s cut ended (s)": round(all_final_s, 1),
            "all final after kill (s)": round(time.monotonic() - killed_at, 1),
        }
    finally:
        hosts.stop()


@pytest.mark.parametrize("kind", ["redis", "amqp"])
async def test_five_hosts_lose_nothing_when_a_worker_host_dies_and_another_is_cut_off(network: None, kind: str) -> None:
    if kind == "amqp" and server_script() is None:
        pytest.skip(
            "multi-host RabbitMQ variant skipped: rabbitmq-server is not installed, and the store host must run its "
            "own (`apt-get install rabbitmq-server`, which .ci/run does as root)"
        )
    net = Network(HOSTS).create()
    logs = Path(tempfile.mkdtemp(prefix=f"oe-multihost-{kind}-"))
    try:
        await run_variant(kind, net, logs)
    finally:
        net.destroy()
    shutil.rmtree(logs, ignore_errors=True)  # kept when the test fails, for its logs
