"""CPU per order, part by part, measured apart: `python -m bench.cost`.

Throughput on this shared 2-core machine moves by 30-50% between runs of the same code; the CPU each part spends on
one order does not, so this is the figure to compare commits by. Two phases on one system:

- accept: `orders` ExecuteOrder calls, `concurrency` at a time, with the workers stopped (SIGSTOP), so the server,
  PostgreSQL and Redis CPU is that of accepting orders alone;
- work: the workers continue (SIGCONT) and drain that backlog to the last final event, so the workers' CPU is that of
  executing the orders alone, at the rate a backlog lets them go (no idle polling in between);
- open, live: as many orders again, each watched by one WatchOrder stream: `open` is opening every stream (up to its
  stored `pending` event), `live` is the workers draining them while every later event goes out live (its figures
  include the work's, so live - work is what watching costs).

`--profile DIR` also records the worker (and, while accepting, the server) with py-spy into DIR, as raw stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.drivers import FINAL, GrpcDriver
from bench.launcher import Stores, System, make_tmp, remove_tmp
from bench.procstat import CpuMeter
from workers.domain import FINAL_STATUSES

PARTS = ("server", "workers", "postgres", "redis", "loadgen")
PHASES = ("accept", "work", "open", "live")


async def _accept(system: System, orders: int, concurrency: int) -> list[str]:
    driver = GrpcDriver(system.grpc_target, api_key=system.api_key)
    ids: list[str] = []
    todo = iter(range(orders))

    async def client() -> None:
        for n in todo:
            ids.append(await driver.execute(n))

    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        await driver.close()
    return ids


async def _watched(system: System, ids: list[str], worker_pids: list[int]) -> dict[str, Any]:
    """Opens a stream per order (each has its `pending` event then), then lets the workers go: the CPU of opening
    the streams, and of delivering every later event live, apart."""
    driver = GrpcDriver(system.grpc_target, api_key=system.api_key)
    opened = 0
    all_open = asyncio.Event()

    async def one(order_id: str) -> None:
        nonlocal opened
        status = ""
        async for status, _seq, _time in driver.watch(order_id):
            if status == "pending":
                opened += 1
                if opened == len(ids):
                    all_open.set()
            if status in FINAL:
                return
        raise RuntimeError(f"the stream of {order_id} ended at {status or 'nothing'}")

    try:
        meter = CpuMeter(system.pids(), system.pids).start()
        t0 = time.monotonic()
        streams = asyncio.gather(*(one(order_id) for order_id in ids))
        await asyncio.wait_for(all_open.wait(), 120)
        open_s = time.monotonic() - t0
        open_cpu = _per_order(meter.stop(), open_s, len(ids))
        meter = CpuMeter(system.pids(), system.pids).start()
        t0 = time.monotonic()
        for pid in worker_pids:
            os.kill(pid, signal.SIGCONT)
        await asyncio.wait_for(streams, 600)
        live_s = time.monotonic() - t0
        live_cpu = _per_order(meter.stop(), live_s, len(ids))
    finally:
        await driver.close()
    return {
        "open": {"seconds": round(open_s, 2), "per_s": round(len(ids) / open_s, 1), "cpu_ms": open_cpu},
        "live": {"seconds": round(live_s, 2), "per_s": round(len(ids) / live_s, 1), "cpu_ms": live_cpu},
    }


def _final(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM orders WHERE status = ANY(%s)", ([s.value for s in FINAL_STATUSES],)
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_final(database_url: str, orders: int, timeout: float) -> float:
    """Seconds until every order is final; polled 5 times a second (a count over an index costs PostgreSQL
    next to nothing beside the orders' own work)."""
    t0 = time.monotonic()
    while _final(database_url) < orders:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"only {_final(database_url)}/{orders} orders final after {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - t0


def _py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "py-spy"),
            *("record", "--rate", "200", "--nonblocking", "--gil", "--format", "raw", "--threads"),
            *("--duration", str(max(1, int(seconds))), "--pid", str(pid), "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _per_order(cores: dict[str, float], elapsed: float, orders: int) -> dict[str, float]:
    ms = {part: round(cores.get(part, 0.0) * elapsed * 1000 / orders, 2) for part in PARTS}
    ms["all"] = round(sum(ms.values()), 2)
    return ms


def measure(
    stores: Stores,
    *,
    orders: int,
    concurrency: int,
    latency: str,
    workers: int,
    threads: int | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    system = System.start(
        stores, latency=latency, workers=workers, threads=threads, extra_env={"MARKET_LAUNCH_SECONDS": "0"}
    )
    try:
        worker_pids = system.pids()["workers"]
        for pid in worker_pids:
            os.kill(pid, signal.SIGSTOP)
        # Warm every part (connections, caches, PostgreSQL backends, which the meter only sees if they exist when it
        # starts) with orders that are not counted: accepted, then drained, then the workers stopped again.
        warm = 200
        asyncio.run(_accept(system, warm, concurrency))
        for pid in worker_pids:
            os.kill(pid, signal.SIGCONT)
        _wait_final(system.env["DATABASE_URL"], warm, timeout=120)
        for pid in worker_pids:
            os.kill(pid, signal.SIGSTOP)

        meter = CpuMeter(system.pids(), system.pids).start()
        spy = _py_spy(system.server_pids()[0], 30, profile / "server-accept.txt") if profile else None
        t0 = time.monotonic()
        asyncio.run(_accept(system, orders, concurrency))
        accept_s = time.monotonic() - t0
        accept = _per_order(meter.stop(), accept_s, orders)
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait()

        meter = CpuMeter(system.pids(), system.pids).start()
        spy = _py_spy(worker_pids[0], 60, profile / "worker-drain.txt") if profile else None
        for pid in worker_pids:
            os.kill(pid, signal.SIGCONT)
        drain_s = _wait_final(system.env["DATABASE_URL"], orders + warm, timeout=600)
        drain = _per_order(meter.stop(), drain_s, orders)
        if spy:  # stopped with the drain, so the profile holds no idle polling after it
            spy.send_signal(signal.SIGINT)
            spy.wait()
        # The same again with every order watched: what opening a stream and delivering its events live cost.
        for pid in worker_pids:
            os.kill(pid, signal.SIGSTOP)
        ids = asyncio.run(_accept(system, orders, concurrency))
        watched = asyncio.run(_watched(system, ids, worker_pids))
        with psycopg.connect(system.env["DATABASE_URL"]) as conn:
            statuses: dict[str, int] = dict(
                conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall()
            )
            # Why orders failed (under `realistic`, orders quoted against the same pools before any settles can
            # miss their slippage): what the throughput was bought with.
            failures: dict[str, int] = dict(
                conn.execute(
                    "SELECT error->>'code', count(*) FROM orders WHERE status = 'failed' GROUP BY 1"
                ).fetchall()
            )
        return {
            "latency": latency,
            "orders": orders,
            "concurrency": concurrency,
            "workers": workers,
            "accept": {"seconds": round(accept_s, 2), "per_s": round(orders / accept_s, 1), "cpu_ms": accept},
            "statuses": statuses,
            "failures": failures,
            **watched,
            "work": {"seconds": round(drain_s, 2), "per_s": round(orders / drain_s, 1), "cpu_ms": drain},
        }
    finally:
        for pid in system.pids().get("workers", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        system.stop()


def cost_line(name: str, phase: dict[str, Any]) -> str:
    ms = phase["cpu_ms"]
    parts = "  ".join(f"{p} {ms[p]:5.2f}" for p in (*PARTS, "all"))
    return f"{name:6} {phase['per_s']:7.1f}/s  CPU ms per order: {parts}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", choices=("zero", "realistic"), default="zero")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, help="WORKER_THREADS (the default's otherwise)")
    parser.add_argument("--profile", type=Path, help="record py-spy raw stacks into this folder")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    tmp = make_tmp()
    stores = Stores.start_for_bench(tmp)
    try:
        result = measure(
            stores,
            orders=args.orders,
            concurrency=args.concurrency,
            latency=args.latency,
            workers=args.workers,
            threads=args.threads,
            profile=args.profile,
        )
    finally:
        stores.stop()
        remove_tmp(tmp)
    if args.json:
        print(json.dumps(result))
    else:
        for phase in PHASES:
            print(cost_line(phase, result[phase]))
        print("final statuses:", ", ".join(f"{k} {v}" for k, v in sorted(result["statuses"].items())))
        if result["failures"]:
            print("failures:", ", ".join(f"{k} {v}" for k, v in sorted(result["failures"].items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
