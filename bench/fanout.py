"""Fan-out: many concurrent WatchOrder streams (or browser WebSockets through the bridge), each receiving every
event of its order.

The orders are placed while no worker runs, so they wait at `pending`. Several client processes
(`bench.fanout_client`, at most STREAMS_PER_CLIENT streams each, so that the load generator is not the ceiling)
open the streams and wait until each has its `pending` event (the server has then registered it) before the
workers start; from then on every event is delivered live to every stream of its order. A stream counts as
complete only when it received seq 1, 2, ... up to the order's last seq as stored (GetOrder afterwards), with no
gap and no repeat, ending with the terminal event. The server's RSS is read from /proc (every process of
`serve --processes N`), and reported per 1,000 open streams.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from typing import Any

from bench.drivers import GrpcDriver
from bench.launcher import ROOT, System
from bench.procstat import CpuMeter, memory_kib
from bench.stats import summary_ms
from server.orphans import child_env

STREAMS_PER_CLIENT = 2_500
CHANNELS_PER_CLIENT = 16  # connections per client process: SO_REUSEPORT spreads connections, not streams
OPEN_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 300.0
PLACE_CONCURRENCY = 200


class Client:
    """One `bench.fanout_client` process and its JSON-lines conversation."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, job: dict[str, Any], env: dict[str, str]) -> Client:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fanout_client",
            cwd=ROOT,
            env=child_env(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 30,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        await proc.stdin.drain()
        return cls(proc)

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"fan-out client exited with {await self.proc.wait()}")
        message: dict[str, Any] = json.loads(raw)
        return message

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(b"stop\n")

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


def _rss_kib(pids: list[int]) -> tuple[int, int]:
    """Summed VmRSS and VmHWM of the processes."""
    mem = [memory_kib(p) for p in pids]
    return sum(m["VmRSS"] for m in mem), sum(m["VmHWM"] for m in mem)


async def _place(driver: GrpcDriver, orders: int) -> list[str]:
    gate = asyncio.Semaphore(PLACE_CONCURRENCY)

    async def one(i: int) -> str:
        async with gate:
            return await driver.execute(i)

    return list(await asyncio.gather(*(one(i) for i in range(orders))))


async def _last_seqs(driver: GrpcDriver, ids: list[str]) -> dict[str, int]:
    gate = asyncio.Semaphore(PLACE_CONCURRENCY)

    async def one(order_id: str) -> tuple[str, int]:
        async with gate:
            return order_id, await driver.last_seq(order_id)

    return dict(await asyncio.gather(*(one(i) for i in ids)))


async def fan_out(
    system: System,
    *,
    streams: int,
    orders: int,
    workers: int,
    via: str = "grpc",
    clients: int | None = None,
) -> dict[str, Any]:
    """`via` "grpc": WatchOrder streams straight to the server; "bridge": WebSockets through the bridge;
    "grpc-web": gRPC-Web WatchOrder calls through the bridge."""
    assert streams % orders == 0
    n_clients = clients or max(1, math.ceil(streams / STREAMS_PER_CLIENT))
    driver = GrpcDriver(system.grpc_target, channels=8, api_key=system.api_key)
    spawned: list[Client] = []
    try:
        ids = await _place(driver, orders)
        server = system.server_pids()
        bridge = system.bridge_pids()
        rss_before, _ = _rss_kib(server)
        bridge_before, _ = _rss_kib(bridge)
        watched = [ids[k % orders] for k in range(streams)]
        t_open = time.monotonic()
        for i in range(n_clients):
            job = {
                "via": via,
                "target": system.grpc_target,
                "http_port": system.http_port,
                "api_key": system.api_key,
                "channels": CHANNELS_PER_CLIENT,
                "open_timeout_s": OPEN_TIMEOUT_S,
                "watch_timeout_s": OPEN_TIMEOUT_S + RUN_TIMEOUT_S + 60,
                "order_ids": watched[i::n_clients],
            }
            spawned.append(await Client.start(job, system.env))
        ready = await asyncio.wait_for(asyncio.gather(*(c.line() for c in spawned)), OPEN_TIMEOUT_S + 30)
        open_s = time.monotonic() - t_open
        subscribed = sum(r["subscribed"] for r in ready)
        rss_open, _ = _rss_kib(server)
        bridge_open, _ = _rss_kib(bridge)
        per_process_open = [round(memory_kib(p)["VmRSS"] / 1024, 1) for p in server]

        system.start_workers(workers)
        meter = CpuMeter(system.pids(), system.pids).start()
        peak_rss, peak_bridge = rss_open, bridge_open
        t_run = time.monotonic()
        results = asyncio.ensure_future(asyncio.gather(*(c.line() for c in spawned)))
        while not results.done():
            if time.monotonic() - t_run > RUN_TIMEOUT_S:
                for c in spawned:
                    c.stop()
                break
            peak_rss = max(peak_rss, _rss_kib(server)[0])
            peak_bridge = max(peak_bridge, _rss_kib(bridge)[0])
            await asyncio.wait({results}, timeout=0.1)
        done = [m["result"] for m in await results]
        run_s = time.monotonic() - t_run
        cpu = meter.stop()
        # The client processes have exited by now: their own accounts of CPU during the events.
        clients_cpu = sum(r["cpu_s"] for r in done) - sum(r["cpu_s"] for r in ready)
        cpu["loadgen"] = round(cpu.get("loadgen", 0.0) + clients_cpu / run_s, 3)
        cpu["total"] = round(cpu.get("total", 0.0) + clients_cpu / run_s, 3)
        hwm = _rss_kib(server)[1]
        stored = await _last_seqs(driver, ids)
    finally:
        for c in spawned:
            await c.close()
        await driver.close()

    complete = confirmed = delivered = expected = 0
    delivery: list[float] = []
    errors: dict[str, int] = {}
    samples: list[str] = []
    for i, r in enumerate(done):
        mine = watched[i::n_clients]
        for k, order_id in enumerate(mine):
            want = stored[order_id]
            expected += want
            delivered += r["last_seq"][k] if r["in_order"][k] else 0
            if r["final"][k] and r["in_order"][k] and r["last_seq"][k] == want:
                complete += 1
                confirmed += r["final"][k] == "confirmed"
        delivery += r["delivery_s"]
        for kind, count in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
        samples += r["error_samples"][: max(0, 3 - len(samples))]
    opened_mib = max(rss_open - rss_before, 0) / 1024
    return {
        "via": via,
        "streams": streams,
        "orders": orders,
        "streams_per_order": streams // orders,
        "workers": workers,
        "server_processes": len(server) - (1 if len(server) > 1 else 0),
        "client_processes": n_clients,
        "subscribed": subscribed,
        "open_s": round(open_s, 2),
        "streams_complete": complete,
        "all_delivered": complete == streams,
        "confirmed_streams": confirmed,
        "events_delivered": delivered,
        "events_expected": expected,
        "run_s": round(run_s, 2),
        "delivery_ms": summary_ms(delivery),
        "server_rss_mib": {
            "before_streams": round(rss_before / 1024, 1),
            "streams_open": round(rss_open / 1024, 1),
            "peak_during_events": round(peak_rss / 1024, 1),
            "hwm": round(hwm / 1024, 1),
            "per_process_streams_open": per_process_open,
        },
        "server_rss_mib_per_1000_streams": round(opened_mib * 1000 / subscribed, 1) if subscribed else None,
        "bridge_rss_mib": (
            {
                "before_streams": round(bridge_before / 1024, 1),
                "streams_open": round(bridge_open / 1024, 1),
                "peak_during_events": round(peak_bridge / 1024, 1),
            }
            if bridge
            else None
        ),
        "cpu_cores_during_events": cpu,
        "error_counts": errors,
        "errors": samples,
    }


def main() -> None:
    """`python -m bench.fanout --streams 10000 --orders 250 [--via bridge] [--server-processes N]`: one fan-out
    run on freshly started stores and system, its figures printed as JSON (BENCHMARKS.md is not touched)."""
    import argparse

    from bench.launcher import Stores, make_tmp, remove_tmp

    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=main.__doc__)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=250)
    parser.add_argument("--via", choices=("grpc", "bridge", "grpc-web"), default="grpc")
    parser.add_argument("--latency", choices=("zero", "realistic"), default="zero")
    parser.add_argument("--server-processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--clients", type=int, default=None, help=f"client processes (default 1 per {STREAMS_PER_CLIENT})"
    )
    args = parser.parse_args()

    async def measure(stores: Stores) -> dict[str, Any]:
        system = System.start(
            stores,
            latency=args.latency,
            workers=args.workers,
            start_workers=False,
            bridge=args.via != "grpc",
            server_processes=args.server_processes,
        )
        try:
            return await fan_out(
                system,
                streams=args.streams,
                orders=args.orders,
                workers=args.workers,
                via=args.via,
                clients=args.clients,
            )
        finally:
            system.stop()

    tmp = make_tmp()
    stores = Stores.start_for_bench(tmp)
    try:
        result = asyncio.run(measure(stores))
    finally:
        stores.stop()
        remove_tmp(tmp)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
