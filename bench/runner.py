"""Runs the plan's scenarios against freshly started systems and collects their figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bench import profiler
from bench.burst import burst
from bench.cost import PHASES, cost_line
from bench.cost import measure as measure_cost
from bench.drivers import BridgeDriver, Driver, GrpcDriver
from bench.fanout import fan_out
from bench.grpc_floor import grpc_floor
from bench.grpc_web_driver import GrpcWebDriver
from bench.launcher import Stores, System
from bench.load import closed_loop, open_loop
from bench.plan import TRANSPORTS, Plan, Ramp
from bench.telemetry_cost import telemetry_cost


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _brief(r: dict[str, Any]) -> str:
    e2e, cpu = r["e2e_ms"], r["cpu_cores"]
    load = f"c={r['concurrency']}" if r["mode"] == "closed" else f"rate={r['rate']:g}/s"
    return (
        f"{load}: {r['throughput_per_s']:.1f} confirmed/s (offered {r['offered_per_s']:.1f}/s), "
        f"e2e p50 {e2e['p50']} p99 {e2e['p99']} ms, execute p99 {r['execute_ms']['p99']} ms, "
        f"delivery p99 {r['delivery_ms']['p99']} ms, failed {r['failed']} errors {r['errors']} "
        f"unfinished {r['unfinished']}, cpu {cpu.get('total')} of machine {cpu.get('machine')} cores"
    )


def _grpc(system: System) -> Callable[[], Driver]:
    return lambda: GrpcDriver(system.grpc_target, api_key=system.api_key)


FAN_OUT_VIA = {"grpc": "grpc", "websocket": "bridge", "grpc-web": "grpc-web"}


def _transport(name: str, system: System, connections: int = 64) -> Callable[[], Driver]:
    """A driver factory for one of TRANSPORTS against a system started with its bridge."""
    assert system.http_port is not None
    port = system.http_port
    key = system.api_key
    if name == "grpc":
        return _grpc(system)
    if name == "websocket":
        return lambda: BridgeDriver(port, connections=connections, api_key=key)
    return lambda: GrpcWebDriver(port, connections=connections, api_key=key)


class Runner:
    def __init__(self, plan: Plan, stores: Stores, live: list[System]) -> None:
        self.plan = plan
        self.stores = stores
        self.live = live

    @contextlib.asynccontextmanager
    async def system(self, **kwargs: Any) -> AsyncIterator[System]:
        system = System.start(self.stores, **kwargs)
        self.live.append(system)
        try:
            yield system
        finally:
            self.live.remove(system)
            system.stop()

    async def ramp(
        self, make_driver: Callable[[], Driver], system: System, ramp: Ramp, label: str
    ) -> list[dict[str, Any]]:
        # Every step is run: with group commit, throughput can stay flat from one step and grow at the next (bigger
        # batches), so a ramp that stopped at the first step without a gain missed the peak.
        steps: list[dict[str, Any]] = []
        driver = make_driver()
        try:
            for c in ramp.concurrency:
                r = await closed_loop(
                    driver, system.pids, concurrency=c, warmup=ramp.warmup, duration=ramp.duration, drain=ramp.drain
                )
                say(f"  {label} {_brief(r)}")
                steps.append(r)
                await asyncio.sleep(0.5)
        finally:
            await driver.close()
        return steps

    async def rates(
        self,
        make_driver: Callable[[], Driver],
        system: System,
        rates: list[float],
        warmup: float,
        duration: float,
        drain: float,
        label: str,
    ) -> list[dict[str, Any]]:
        out = []
        driver = make_driver()
        try:
            for rate in rates:
                r = await open_loop(driver, system.pids, rate=rate, warmup=warmup, duration=duration, drain=drain)
                say(f"  {label} {_brief(r)}")
                out.append(r)
                await asyncio.sleep(0.5)
        finally:
            await driver.close()
        return out

    async def latency_profile(self, latency: str) -> dict[str, Any]:
        """Throughput ramps with 1, 2, 4... worker processes, then open-loop latency with the best of them."""
        p = self.plan
        ramp = p.zero_ramp if latency == "zero" else p.realistic_ramp
        by_workers: dict[str, list[dict[str, Any]]] = {}
        for w in p.workers:
            say(f"{latency}: throughput with {w} worker process(es)")
            async with self.system(latency=latency, workers=w) as s:
                by_workers[str(w)] = await self.ramp(_grpc(s), s, ramp, f"w={w}")
        peak = {w: max(r["throughput_per_s"] for r in steps) for w, steps in by_workers.items()}
        best_w = int(max(peak, key=lambda w: peak[w]))
        best = peak[str(best_w)]
        if latency == "zero":
            rates = sorted({round(best * f) for f in p.zero_fractions} | {round(r) for r in p.zero_fixed_rates})
            warmup, duration, drain = p.open_warmup, p.open_duration, 10.0
        else:
            rates = sorted({round(r) for r in p.realistic_rates})
            warmup, duration, drain = p.realistic_open_warmup, p.realistic_open_duration, 10.0
        rates = [r for r in rates if r > 0]
        say(f"{latency}: open-loop latency with {best_w} worker process(es) at {rates} orders/s")
        async with self.system(latency=latency, workers=best_w) as s:
            open_runs = await self.rates(_grpc(s), s, [float(r) for r in rates], warmup, duration, drain, f"w={best_w}")
        return {
            "throughput_by_workers": by_workers,
            "peak_by_workers": peak,
            "best_workers": best_w,
            "best_throughput_per_s": best,
            "open_loop": open_runs,
        }

    async def threads(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in self.plan.thread_counts:
            say(f"realistic: one worker process with WORKER_THREADS={t}")
            async with self.system(latency="realistic", workers=1, threads=t) as s:
                out[str(t)] = await self.ramp(_grpc(s), s, self.plan.threads_ramp, f"threads={t}")
        return out

    async def fanout(self, workers: int) -> list[dict[str, Any]]:
        out = []
        for f in self.plan.fanout:
            where = f"{f.server_processes} server process(es)" + (", through the bridge" if f.via == "bridge" else "")
            say(f"fan-out: {f.streams} streams over {f.orders} orders, {where} ({f.latency})")
            async with self.system(
                latency=f.latency,
                workers=workers,
                start_workers=False,
                bridge=f.via == "bridge",
                server_processes=f.server_processes,
            ) as s:
                r = await fan_out(s, streams=f.streams, orders=f.orders, workers=workers, via=f.via)
            r["latency"] = f.latency
            say(
                f"  all delivered: {r['all_delivered']} ({r['streams_complete']}/{f.streams} streams, "
                f"{r['events_delivered']}/{r['events_expected']} events), open {r['open_s']} s, run {r['run_s']} s, "
                f"delivery p50 {r['delivery_ms']['p50']} p99 {r['delivery_ms']['p99']} ms, "
                f"server RSS {r['server_rss_mib']} ({r['server_rss_mib_per_1000_streams']} MiB per 1,000 streams), "
                f"bridge RSS {r['bridge_rss_mib']}, cpu {r['cpu_cores_during_events']}, errors {r['error_counts']}"
            )
            out.append(r)
        return out

    async def bridge(self, zero_workers: int, realistic_workers: int) -> dict[str, Any]:
        p = self.plan
        out: dict[str, Any] = {}
        say(f"bridge (HTTP + WebSocket), zero latency, {zero_workers} worker process(es)")
        async with self.system(latency="zero", workers=zero_workers, bridge=True) as s:
            assert s.http_port is not None
            port, key = s.http_port, s.api_key
            out["zero"] = await self.ramp(lambda: BridgeDriver(port, api_key=key), s, p.bridge_ramp, "bridge")
            if p.bridge_rates:
                rates = list(p.bridge_rates)
                out["zero_open_loop"] = await self.rates(
                    lambda: BridgeDriver(port, api_key=key), s, rates, p.open_warmup, p.open_duration, 10, "bridge"
                )
        if p.bridge_realistic_ramp.concurrency:
            say(f"bridge (HTTP + WebSocket), realistic latency, {realistic_workers} worker process(es)")
            async with self.system(latency="realistic", workers=realistic_workers, bridge=True) as s:
                assert s.http_port is not None
                rport, rkey = s.http_port, s.api_key
                out["realistic"] = await self.ramp(
                    lambda: BridgeDriver(rport, connections=256, api_key=rkey), s, p.bridge_realistic_ramp, "bridge"
                )
        out["workers"] = {"zero": zero_workers, "realistic": realistic_workers}
        return out

    async def transports(self, workers: int) -> dict[str, Any]:
        """The same orders and events through native gRPC, the bridge's WebSocket and its gRPC-Web."""
        p = self.plan
        out: dict[str, Any] = {"workers": workers, "load": {}, "light": {}, "fanout": {}}
        say(f"transports: {', '.join(TRANSPORTS)} on one system, zero latency, {workers} worker process(es)")
        async with self.system(latency="zero", workers=workers, bridge=True) as s:
            for name in TRANSPORTS:
                out["load"][name] = await self.ramp(_transport(name, s), s, p.transport_ramp, name)
                if p.transport_rates:
                    rates = list(p.transport_rates)
                    out["light"][name] = await self.rates(
                        _transport(name, s), s, rates, p.open_warmup, p.open_duration, 10, name
                    )
        streams, orders = p.transport_fanout
        for name in TRANSPORTS:
            say(f"transports: {name} fan-out, {streams} streams over {orders} orders")
            async with self.system(latency="zero", workers=workers, bridge=True, start_workers=False) as s:
                r = await fan_out(s, streams=streams, orders=orders, workers=workers, via=FAN_OUT_VIA[name])
            r["live_events_per_s"] = round(r["delivery_ms"]["n"] / r["run_s"], 1) if r["run_s"] else None
            say(
                f"  {name}: {r['streams_complete']}/{streams} streams complete, "
                f"{r['live_events_per_s']} live events/s, "
                f"delivery p50 {r['delivery_ms']['p50']} p99 {r['delivery_ms']['p99']} ms, "
                f"cpu {r['cpu_cores_during_events']}"
            )
            out["fanout"][name] = r
        return out

    async def burst(self, workers: int) -> dict[str, Any]:
        """Bursts of `burst_size` orders at once, over gRPC and through the bridge, on one system."""
        p = self.plan
        out: dict[str, Any] = {"workers": workers}
        say(f"burst: {p.burst_rounds} rounds of {p.burst_size} orders at once, {workers} worker process(es), zero")
        async with self.system(latency="zero", workers=workers, bridge=True) as s:
            assert s.http_port is not None
            drivers: dict[str, Driver] = {
                # One HTTP connection per user, as browsers do; gRPC clients share a few channels.
                "grpc": GrpcDriver(s.grpc_target, api_key=s.api_key),
                "bridge": BridgeDriver(s.http_port, connections=p.burst_size, api_key=s.api_key),
            }
            for name, driver in drivers.items():
                try:
                    r = await burst(driver, s.pids, size=p.burst_size, rounds=p.burst_rounds, idle_s=p.burst_idle_s)
                finally:
                    await driver.close()
                a = r["answer_ms"]
                say(
                    f"  {name}: answer p50 {a['p50']} p99 {a['p99']} max {a['max']} ms over {a['n']} orders, "
                    f"errors {r['errors']}, cpu {r['cpu_cores']}"
                )
                out[name] = r
        for n in p.burst_server_processes:
            async with self.system(latency="zero", workers=workers, server_processes=n) as s:
                driver = GrpcDriver(s.grpc_target, api_key=s.api_key)
                try:
                    r = await burst(driver, s.pids, size=p.burst_size, rounds=p.burst_rounds, idle_s=p.burst_idle_s)
                finally:
                    await driver.close()
                a = r["answer_ms"]
                say(f"  grpc, serve --processes {n}: answer p50 {a['p50']} p99 {a['p99']} max {a['max']} ms")
                out[f"grpc_p{n}"] = {**r, "server_processes": n}
        return out

    async def brokers(self, tmp: Path) -> dict[str, Any]:
        """The same ramps on Dramatiq's Redis broker and on RabbitMQ (a private node, as the tests start one)."""
        from tests.rabbitmq import RabbitMQServer, server_script

        p = self.plan
        if server_script() is None:
            reason = "rabbitmq-server is not installed (apt-get install rabbitmq-server); no registry embeds it"
            say(f"brokers: skipped: {reason}")
            return {"skipped": reason}
        rabbitmq = RabbitMQServer(tmp / "rabbitmq")
        await asyncio.to_thread(rabbitmq.start)
        out: dict[str, Any] = {"workers": p.broker_workers}
        try:
            for kind in ("redis", "amqp"):
                extra = {"BROKER_URL": await asyncio.to_thread(rabbitmq.new_vhost)} if kind == "amqp" else {}
                for latency, ramp in (("zero", p.broker_zero_ramp), ("realistic", p.broker_realistic_ramp)):
                    say(f"brokers: {kind}, {latency}, {p.broker_workers} worker process(es)")
                    async with self.system(latency=latency, workers=p.broker_workers, extra_env=extra) as s:
                        if kind == "amqp":
                            s.broker_pid = rabbitmq.pid
                        out[f"{kind}_{latency}"] = await self.ramp(_grpc(s), s, ramp, kind)
        finally:
            rabbitmq.stop()
        return out

    async def profile(self, workers: int, out_dir: Path) -> dict[str, Any]:
        p = self.plan
        if profiler.py_spy() is None:
            say("profile: py-spy is not installed (.venv/bin/pip install py-spy); skipped")
            return {"skipped": "py-spy not installed"}
        # BENCH_PROFILE_LATENCY=realistic profiles the other market (the report's text assumes zero).
        latency = os.environ.get("BENCH_PROFILE_LATENCY", "zero")
        say(
            f"profile: py-spy on the server and {workers} worker process(es), {latency} latency, "
            f"c={p.profile_concurrency}"
        )
        async with self.system(latency=latency, workers=workers) as s:
            driver = GrpcDriver(s.grpc_target, api_key=s.api_key)
            try:
                load = asyncio.create_task(
                    closed_loop(
                        driver,
                        s.pids,
                        concurrency=p.profile_concurrency,
                        warmup=2,
                        duration=p.profile_seconds + 1,
                        drain=5,
                    )
                )
                await asyncio.sleep(2)
                targets = {"server": s.procs["server"].pid, "worker": s.procs["worker-1"].pid}
                spies = {
                    name: (profiler.start(pid, p.profile_seconds, out_dir / f"{name}.txt"), out_dir / f"{name}.txt")
                    for name, pid in targets.items()
                }
                r = await load
                for proc, _ in spies.values():
                    if proc is not None:
                        await asyncio.to_thread(proc.wait, 30)
            finally:
                await driver.close()
        say(f"  under profiling: {_brief(r)}")
        result: dict[str, Any] = {"workers": workers, "load": r}
        for name, (_, path) in spies.items():
            result[name] = profiler.summarize(path)
            if keep := os.environ.get("BENCH_KEEP_PROFILES"):
                shutil.copy(path, Path(keep) / path.name)
            top = ", ".join(f"{x['function']} {x['share']:.0%}" for x in result[name]["self"][:5])
            say(f"  {name} top self: {top}")
        return result


async def run(plan: Plan, scenarios: set[str], stores: Stores, live: list[System], tmp: Path) -> dict[str, Any]:
    runner = Runner(plan, stores, live)
    results: dict[str, Any] = {}
    started = time.monotonic()
    zero_w = realistic_w = max(plan.workers)
    if "zero" in scenarios:
        results["zero"] = await runner.latency_profile("zero")
        zero_w = results["zero"]["best_workers"]
    if "realistic" in scenarios:
        results["realistic"] = await runner.latency_profile("realistic")
        realistic_w = results["realistic"]["best_workers"]
    if "threads" in scenarios and plan.thread_counts:
        results["threads"] = await runner.threads()
    if "fanout" in scenarios:
        results["fanout"] = await runner.fanout(workers=zero_w)
    if "bridge" in scenarios:
        try:
            import server.bridge  # noqa: F401
        except ImportError as exc:
            results["bridge"] = {"skipped": f"server.bridge is not importable: {exc}"}
        else:
            results["bridge"] = await runner.bridge(zero_w, realistic_w)
    if "transports" in scenarios:
        results["transports"] = await runner.transports(zero_w)
    if "burst" in scenarios:
        results["burst"] = await runner.burst(zero_w)
    if "floor" in scenarios:
        say(f"floor: {plan.floor_orders} orders through a gRPC servicer that does nothing")
        results["floor"] = await grpc_floor(plan.floor_orders)
        f = results["floor"]
        say(
            f"  {f['orders_per_s']}/s; CPU per order: server {f['server_ms_per_order']} ms, "
            f"client {f['client_ms_per_order']} ms"
        )
    if "cost" in scenarios:
        say(f"cost: CPU per order, part by part, over {plan.cost_orders} orders")
        results["cost"] = await asyncio.to_thread(
            measure_cost, stores, orders=plan.cost_orders, concurrency=32, latency="zero", workers=1
        )
        for phase in PHASES:
            say(f"  {cost_line(phase, results['cost'][phase])}")
    if "brokers" in scenarios:
        results["brokers"] = await runner.brokers(tmp)
    if "profile" in scenarios:
        results["profile"] = await runner.profile(1, tmp)
    if "telemetry" in scenarios:
        say("telemetry: CPU cost of metrics and tracing")
        results["telemetry"] = await telemetry_cost(
            stores,
            live,
            rate=plan.telemetry_rate,
            rounds=plan.telemetry_rounds,
            warmup=2,
            duration=plan.telemetry_duration,
            say=say,
        )
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results
