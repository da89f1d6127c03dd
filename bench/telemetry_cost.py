"""What seeing inside costs: the same open-loop load (zero latency, one worker process) on three systems, with
telemetry off, with metrics (every process serving /metrics, scraped every second as the page's charts do),
and with metrics and tracing (spans exported over OTLP/HTTP to a receiver in this process). Rounds alternate the
three, so a neighbour's load on the shared machine falls on all of them alike."""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
from datetime import UTC, datetime
from typing import Any

from bench.drivers import GrpcDriver
from bench.launcher import Stores, System
from bench.load import open_loop
from tests.integration.otlp_receiver import OtlpReceiver
from tests.scratch_stores import free_port

MODES = ("off", "metrics", "metrics+tracing")
SCRAPE_EVERY_S = 1.0


def _env(mode: str, receiver: OtlpReceiver) -> tuple[dict[str, str], list[str]]:
    if mode == "off":
        return {}, []
    serve, worker = free_port(), free_port()
    env = {"SERVE_METRICS_PORT": str(serve), "WORKER_METRICS_PORT": str(worker)}
    if mode == "metrics+tracing":
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "1000"}
    return env, [f"http://127.0.0.1:{serve}/metrics", f"http://127.0.0.1:{worker}/metrics"]


async def _scrape_forever(urls: list[str]) -> None:
    def one(url: str) -> None:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            response.read()

    while True:
        await asyncio.gather(*(asyncio.to_thread(one, u) for u in urls))
        await asyncio.sleep(SCRAPE_EVERY_S)


async def telemetry_cost(
    stores: Stores, live: list[System], *, rate: float, rounds: int, warmup: float, duration: float, say: Any
) -> dict[str, Any]:
    started, loadavg = datetime.now(UTC).isoformat(timespec="seconds"), list(os.getloadavg())
    receiver = OtlpReceiver().start()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    try:
        for round_no in range(rounds):
            for mode in MODES:
                env, urls = _env(mode, receiver)
                system = System.start(stores, latency="zero", workers=1, extra_env=env)
                live.append(system)
                scraper = asyncio.create_task(_scrape_forever(urls)) if urls else None
                driver = GrpcDriver(system.grpc_target, api_key=system.api_key)
                try:
                    r = await open_loop(
                        driver, system.pids, rate=rate, warmup=warmup, duration=duration, drain=10, poisson=False
                    )
                finally:
                    if scraper is not None:
                        scraper.cancel()
                    await driver.close()
                    live.remove(system)
                    system.stop()
                cpu = r["cpu_cores"]
                engine = cpu.get("server", 0.0) + cpu.get("workers", 0.0)
                r["engine_cpu_ms_per_order"] = round(1000 * engine / rate, 2)
                r["round"] = round_no + 1
                runs[mode].append(r)
                say(
                    f"  telemetry {mode:<16} round {round_no + 1}: server {cpu.get('server')} + workers "
                    f"{cpu.get('workers')} cores = {r['engine_cpu_ms_per_order']} ms CPU/order, "
                    f"e2e p50 {r['e2e_ms'].get('p50')} ms, confirmed {r['confirmed']}"
                )
    finally:
        receiver.stop()
    return {
        "started": started,
        "loadavg_before": loadavg,
        "rate": rate,
        "scrape_every_s": SCRAPE_EVERY_S,
        "spans_received": len(receiver.spans),
        "runs": runs,
    }
