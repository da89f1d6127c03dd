"""Renders BENCHMARKS.md from the results JSON (`python -m bench --render-only` redoes it without measuring)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.history import section
from workers.chain import CONFIRM_SLOTS, SLOT_MS
from workers.venues import QUOTE_LATENCY_MS

TARGET_ZERO = 500.0
TARGET_REALISTIC = 200.0
TARGET_E2E_P99_MS = 100.0
TARGET_DELIVERY_P99_MS = 10.0
TARGET_RSS_MIB = 512.0
TARGET_WATCHERS = 10_000
TARGET_WATCHERS_PROCESSES = 50_000
TARGET_FANOUT_DELIVERY_P99_MS = 100.0
TARGET_BURST_P99_MS = 100.0
# What an order waits for under `realistic` latency, on average: the venues' quote, then the landing.
MOCK_DELAY_PER_ORDER_MS = sum(QUOTE_LATENCY_MS) / 2 + SLOT_MS * sum(CONFIRM_SLOTS) / 2


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _cpu(c: dict[str, float], key: str) -> str:
    return _f(c.get(key), 2) if key in c else "-"


CPU_KEYS = ("loadgen", "server", "workers", "bridge", "redis", "rabbitmq", "postgres", "total", "machine")


def _cpu_header() -> tuple[str, str]:
    cols = " | ".join(f"CPU {k}" for k in CPU_KEYS)
    return cols, " | ".join("---:" for _ in CPU_KEYS)


def _load_table(runs: list[dict[str, Any]], first: str, first_of: Any) -> list[str]:
    cpu_cols, cpu_align = _cpu_header()
    lines = [
        f"| {first} | offered/s | confirmed/s | e2e p50 | e2e p90 | e2e p99 | ExecuteOrder p50 | ExecuteOrder p99 "
        f"| delivery p50 | delivery p99 | failed / errors / unfinished | {cpu_cols} |",
        f"| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | {cpu_align} |",
    ]
    for r in runs:
        e, x, d, c = r["e2e_ms"], r["execute_ms"], r["delivery_ms"], r["cpu_cores"]
        lines.append(
            f"| {first_of(r)} | {_f(r['offered_per_s'])} | **{_f(r['throughput_per_s'])}** | {_f(e['p50'])} | "
            f"{_f(e['p90'])} | {_f(e['p99'])} | {_f(x['p50'])} | {_f(x['p99'])} | {_f(d['p50'])} | {_f(d['p99'])} | "
            f"{r['failed']} / {r['errors']} / {r['unfinished']} | " + " | ".join(_cpu(c, k) for k in CPU_KEYS) + " |"
        )
    return lines


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def _closest(runs: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    return min(runs, key=lambda r: abs(r["rate"] - rate)) if runs else None


def targets(res: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str, str, bool | None]] = []
    zero, real = res.get("zero"), res.get("realistic")
    if zero:
        best, w = zero["best_throughput_per_s"], zero["best_workers"]
        rows.append(
            (
                f"`zero`: >= {TARGET_ZERO:.0f} orders/s sustained end to end",
                f">= {TARGET_ZERO:.0f}/s",
                f"{best:.1f}/s ({w} worker processes)",
                best >= TARGET_ZERO,
            )
        )
        half = _closest(zero["open_loop"], TARGET_ZERO / 2)
        if half:
            p99 = half["e2e_ms"]["p99"]
            rows.append(
                (
                    f"`zero`: p99 end to end at half that load ({TARGET_ZERO / 2:.0f}/s, open loop)",
                    f"< {TARGET_E2E_P99_MS:.0f} ms",
                    f"{_f(p99)} ms at {half['offered_per_s']:.0f}/s offered, {half['throughput_per_s']:.0f}/s "
                    "confirmed",
                    p99 is not None
                    and p99 < TARGET_E2E_P99_MS
                    and half["throughput_per_s"] >= 0.95 * half["offered_per_s"],
                )
            )
        light = _closest(zero["open_loop"], best / 2)
        if light:
            p99 = light["delivery_ms"]["p99"]
            rows.append(
                (
                    "event delivery p99 (commit -> watcher), `zero`, open loop at half the measured peak",
                    f"< {TARGET_DELIVERY_P99_MS:.0f} ms",
                    f"{_f(p99)} ms at {light['offered_per_s']:.0f}/s",
                    p99 is not None and p99 < TARGET_DELIVERY_P99_MS,
                )
            )
    if real:
        best, w = real["best_throughput_per_s"], real["best_workers"]
        rows.append(
            (
                f"`realistic`: >= {TARGET_REALISTIC:.0f} orders/s",
                f">= {TARGET_REALISTIC:.0f}/s",
                f"{best:.1f}/s ({w} worker processes)",
                best >= TARGET_REALISTIC,
            )
        )
    threads = res.get("threads")
    if threads and len(threads) >= 2:
        peaks = {int(t): max(r["throughput_per_s"] for r in steps) for t, steps in threads.items()}
        lo, hi = min(peaks), max(peaks)
        # Threads asleep through an order's mock delays could do no more than this many orders a second. More
        # threads may still add throughput (more messages in flight share the store's transactions), so the test
        # is against that bound, not between thread counts.
        asleep = lo / (MOCK_DELAY_PER_ORDER_MS / 1000)
        rows.append(
            (
                "`realistic`: no worker thread asleep on a mock delay",
                f"far above {lo} threads / {MOCK_DELAY_PER_ORDER_MS / 1000:.1f} s of mock delays per order",
                f"{peaks[lo]:.1f}/s with {lo} threads ({peaks[lo] / asleep:.0f}x the {asleep:.1f}/s of sleeping "
                f"threads), {peaks[hi]:.1f}/s with {hi}",
                peaks[lo] >= 10 * asleep,
            )
        )
    for f in res.get("fanout", []):
        rows += _fanout_targets(f)
    b = res.get("burst")
    if b:
        extra = [(k, f"over gRPC, `serve --processes {b[k]['server_processes']}`") for k in b if k.startswith("grpc_p")]
        for key, how in (("grpc", "over gRPC"), ("bridge", "through the bridge (HTTP POST)"), *extra):
            r = b.get(key)
            if r:
                a = r["answer_ms"]
                rows.append(
                    (
                        f"a burst of {r['size']} ExecuteOrder at once {how}: answer (orderId) p99",
                        f"< {TARGET_BURST_P99_MS:.0f} ms",
                        f"p50 {_f(a['p50'])} / p99 {_f(a['p99'])} ms ({r['rounds']} rounds)",
                        a["p99"] is not None and a["p99"] < TARGET_BURST_P99_MS and not r["errors"],
                    )
                )
    lines = ["| target | wanted | measured | |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {_mark(d)} |" for a, b, c, d in rows]
    floor = res.get("floor")
    if floor:
        lines += ["", *_floor(floor, res.get("cost"))]
    return lines


def _floor(f: dict[str, Any], cost: dict[str, Any] | None) -> list[str]:
    """What gRPC alone costs per order (measured without the engine), and so what is left for the engine."""
    per_order = f["server_ms_per_order"] + f["client_ms_per_order"]
    cores_at_target = TARGET_ZERO * per_order / 1000
    budget = 2000 / TARGET_ZERO  # ms of CPU per order on 2 cores
    text = (
        f"**The floor under the `zero` target** (`python -m bench.grpc_floor`): the same load generator against a "
        f"gRPC servicer that does nothing (ExecuteOrder answers an id, WatchOrder yields {f['events_per_order']} "
        f"prebuilt events; the engine's server options, uvloop, {f['concurrency']} orders in flight) ran "
        f"{f['orders_per_s']:.0f} orders/s, spending {f['server_ms_per_order']:.2f} ms of server CPU and "
        f"{f['client_ms_per_order']:.2f} ms of client CPU per order. At {TARGET_ZERO:.0f} orders/s that is "
        f"{cores_at_target:.2f} of the machine's 2 cores for gRPC alone; everything else (engine, stores, broker) "
        f"would have {budget - per_order:.2f} ms of CPU per order."
    )
    total = _cost_total(cost)
    if total is not None:
        text += (
            f" The engine as a whole costs {total:.2f} ms per order watched to its end (see CPU per order, part "
            f"by part), {total / budget:.1f}x the {budget:.0f} ms that {TARGET_ZERO:.0f} orders/s on 2 cores allows."
        )
    return [text]


def _cost_total(cost: dict[str, Any] | None) -> float | None:
    """CPU per order placed, worked and watched live: accept + open + live (live includes the work)."""
    if not cost or "skipped" in cost:
        return None
    return float(sum(cost[p]["cpu_ms"]["all"] for p in ("accept", "open", "live")))


def _cost(cost: dict[str, Any] | None) -> list[str]:
    """bench/cost.py: CPU per order, part by part, phase by phase."""
    if not cost:
        return []
    out = [
        "## CPU per order, part by part (`python -m bench.cost`)",
        "",
        "Throughput on a shared machine moves with whatever else runs; the CPU each part spends per order moves "
        f"much less, so this is the figure to compare commits by. One system (zero latency, 1 worker process), "
        f"{cost['orders']:,} orders per phase, {cost['concurrency']} ExecuteOrder calls in flight: **accept** places "
        "them with the workers stopped (SIGSTOP); **work** lets the workers drain that backlog; **open** opens one "
        "WatchOrder stream per order of a second batch (each has its stored `pending` event); **live** drains that "
        "batch while every later event goes out live (it includes the work, so live - work is what watching "
        "costs). ms of CPU per order:",
        "",
        "| phase | orders/s | server | workers | PostgreSQL | Redis | load generator | all |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for phase in ("accept", "work", "open", "live"):
        r = cost[phase]
        ms = r["cpu_ms"]
        out.append(
            f"| {phase} | {_f(r['per_s'])} | {ms['server']:.2f} | {ms['workers']:.2f} | {ms['postgres']:.2f} | "
            f"{ms['redis']:.2f} | {ms['loadgen']:.2f} | **{ms['all']:.2f}** |"
        )
    total = _cost_total(cost)
    out += [
        "",
        f"An order placed, worked and watched live costs **{_f(total, 2)} ms** of CPU in all (accept + open + live), "
        f"so 2 cores carry at most {_f(2000 / total if total else None, 0)} orders/s; {TARGET_ZERO:.0f}/s needs "
        f"{2000 / TARGET_ZERO:.0f} ms. The `work` phase's rate is also held back by the settlements' turns: each "
        "locks the pools it trades on (`SELECT ... FOR UPDATE`, in id order) until it commits, and the benchmark's "
        "orders all trade on the same few pools (measured once with pg_stat_statements, 2026-12-06: that locking "
        "read averaged 19 ms, nearly all of it waiting, with 16 settlements in flight).",
        "",
    ]
    return out


def _fanout_targets(f: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """Issue 14's stream targets, for the fan-out runs that measure them."""
    via, procs, streams = f.get("via", "grpc"), f.get("server_processes", 1), f["streams"]
    each = "1 watcher" if f["streams_per_order"] == 1 else f"{f['streams_per_order']} watchers"
    shape = f"{f['orders']:,} orders, {each} each, `{f['latency']}`"
    rss = max(f["server_rss_mib"]["peak_during_events"], f["server_rss_mib"]["hwm"])
    p99 = f["delivery_ms"]["p99"]
    events = f"{f['events_delivered']:,}/{f['events_expected']:,} events"
    done = f"{f['streams_complete']:,}/{streams:,} streams complete ({events})"
    if via == "bridge" and streams >= TARGET_WATCHERS:
        bridge = f.get("bridge_rss_mib") or {}
        return [
            (
                f"{TARGET_WATCHERS:,} browser WebSockets through one bridge process ({shape}), every event delivered",
                "all",
                f"{done}, delivery p99 {_f(p99)} ms, bridge RSS {_f(bridge.get('peak_during_events'))} MiB",
                f["all_delivered"],
            )
        ]
    if via == "grpc" and procs == 1 and streams >= TARGET_WATCHERS:
        ok = f["all_delivered"] and rss < TARGET_RSS_MIB and p99 is not None and p99 < TARGET_FANOUT_DELIVERY_P99_MS
        return [
            (
                f"{streams:,} concurrent watchers on one server process ({shape}): every event, delivery p99, RSS",
                f"all, < {TARGET_FANOUT_DELIVERY_P99_MS:.0f} ms, < {TARGET_RSS_MIB:.0f} MiB",
                f"{done}, delivery p99 {_f(p99)} ms, peak RSS {rss:.0f} MiB",
                ok,
            )
        ]
    if via == "grpc" and procs > 1 and streams >= TARGET_WATCHERS_PROCESSES:
        return [
            (
                f"{streams:,} concurrent watchers across `serve --processes {procs}` ({shape}), every event delivered",
                "all",
                f"{done}, delivery p99 {_f(p99)} ms, RSS {rss:.0f} MiB in all",
                f["all_delivered"],
            )
        ]
    return []


def _profile(res: dict[str, Any]) -> list[str]:
    prof = res.get("profile")
    if not prof:
        return ["Not profiled in this run (`--scenarios profile`, needs py-spy in the venv)."]
    if "skipped" in prof:
        return [f"Skipped: {prof['skipped']}."]
    load = prof["load"]
    lines = [
        f"py-spy (`record --rate 100 --nonblocking`, on-CPU samples only) on the server and the worker process for "
        f"{res.get('_profile_seconds', 10)} s, zero latency, 1 worker process, closed loop of "
        f"{load['concurrency']} clients: {load['throughput_per_s']:.1f} confirmed/s while profiled "
        f"(CPU: server {_cpu(load['cpu_cores'], 'server')}, worker {_cpu(load['cpu_cores'], 'workers')}, "
        f"postgres {_cpu(load['cpu_cores'], 'postgres')}, redis {_cpu(load['cpu_cores'], 'redis')} cores). "
        "Shares are of the process's samples. Self time in `asyncio/events.py:Handle._run` is native code run "
        "from event-loop callbacks (gRPC's Cython core, which py-spy does not unwind), and `select` is the "
        "event loop's poll.",
        "",
    ]
    for name in ("server", "worker"):
        p = prof.get(name) or {}
        if not p.get("samples"):
            lines += [f"**{name}**: no samples.", ""]
            continue
        engine = [x for x in p["inclusive"] if x["function"].startswith(("workers/", "server/"))]
        lines += [
            f"**{name}** ({p['samples']} samples)",
            "",
            "| self | function | | inclusive (engine code) | function |",
            "| ---: | --- | --- | ---: | --- |",
        ]
        selfs = p["self"][:12]
        for i in range(max(len(selfs), len(engine[:12]))):
            a = selfs[i] if i < len(selfs) else None
            b = engine[i] if i < len(engine) else None
            cells = []
            for x in (a, b):
                cells += [f"{x['share']:.1%}", f"`{x['function']}`"] if x else ["", ""]
            lines.append(f"| {cells[0]} | {cells[1]} | | {cells[2]} | {cells[3]} |")
        pk = ", ".join(f"{x['function']} {x['share']:.0%}" for x in p.get("self_by_package", [])[:8])
        lines += ["", f"Self time by package: {pk}.", ""]
    return lines


def render(data: dict[str, Any], history: list[dict[str, Any]] | None = None) -> str:
    """The report of one run; `history` (bench/history.py) adds the runs of the same engine code."""
    meta, res = data["meta"], data["results"]
    m, g = meta["machine"], meta["git"]
    out: list[str] = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`; `--quick` for a 1-2 minute subset, `--scenarios` to pick "
        "some, `--render-only` to rebuild this file from `bench/results/latest.json`). Do not edit by hand: the "
        "figures below and `bench/results/latest.json` come from the same run.",
        "",
        "## The run",
        "",
        "| | |",
        "| --- | --- |",
        f"| command | `{meta['command']}` ({'quick subset' if meta['quick'] else 'full run'}) |",
        f"| started | {meta['started']}, took {meta['elapsed_s']:.0f} s |",
        f"| commit | `{g['commit'][:12]}` {g['subject']}{' (engine code modified)' if g['engine_dirty'] else ''} |",
        f"| machine | {m['nproc']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, Python {m['python']}, "
        f"{m['platform']} |",
        f"| stores | {meta['stores']} Redis (Valkey) and PostgreSQL on the same machine, over Unix sockets |",
        f"| load average | {', '.join(f'{x:.2f}' for x in m['loadavg_before'])} before, "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_after', []))} after |",
        f"| machine busy | {meta.get('machine_busy_cores_avg', '-')} cores on average over the run |",
        *(
            [
                f"| machine speed | probe {meta['speed_probe_ms']['before']} ms before the run, "
                f"{meta['speed_probe_ms']['after']} ms after (`bench/speed.py`; lower is faster) |"
            ]
            if meta.get("speed_probe_ms")
            else []
        ),
        *(
            f"| re-measured later | {', '.join(m['command'].split('--scenarios ')[-1].split()[:1])}: "
            f"`{m['command']}` at `{m['git']['commit'][:12]}` {m['git']['subject'][:80].rstrip(';,. ')}, "
            f"{m['started']}, "
            f"machine busy {m['machine_busy_cores_avg']} cores on average, load average "
            f"{', '.join(f'{x:.2f}' for x in m['machine']['loadavg_before'])} before |"
            for m in meta.get("merged", [])
        ),
        "",
        f"Everything runs on this one {m['nproc']}-core machine: the load generator (one Python process, grpc.aio), "
        "the gRPC server, the worker processes, the bridge, Redis and PostgreSQL all share the cores. Each table "
        "gives every part's CPU over the measurement window in cores (1.00 = one core busy all the time); "
        "`total` is the sum of the parts, `machine` is everything the machine ran, so `machine - total` is "
        "other work sharing it.",
    ]
    shared = [
        r["cpu_cores"]["machine"] - r["cpu_cores"]["total"]
        for r in _all_load_runs(res)
        if "machine" in r["cpu_cores"] and "total" in r["cpu_cores"]
    ]
    if shared:
        avg = sum(shared) / len(shared)
        out += [
            "",
            f"**Shared machine:** other processes (other engineers' test suites) used {avg:.2f} cores on average "
            "during the measurement windows of this run, so absolute figures are lower and noisier than on an idle "
            "machine."
            if avg > 0.25
            else f"The machine was otherwise idle ({avg:.2f} cores of other work on average).",
        ]
    out += [
        "",
        "Definitions: **confirmed/s** counts orders whose watcher received `confirmed` inside the measurement "
        "window; every order is watched (WatchOrder stream, or a WebSocket for the bridge) from the moment "
        "ExecuteOrder returns. **e2e** = ExecuteOrder sent -> its watcher has `confirmed`. **delivery** = the event's "
        "`time` (PostgreSQL `clock_timestamp()` of the committing transition) -> the watcher has it, for events "
        "committed after the watch started (earlier ones are a replay, not a delivery). Closed loop: C clients, each "
        "places an order, watches it to the end, places the next. Open loop: Poisson arrivals at a fixed rate, "
        "whatever the system's backlog. Latencies in ms.",
        "",
        "## Targets (issues 6 and 14)",
        "",
        *targets(res),
        "",
    ]
    if history is not None and meta.get("engine"):
        out += section(history, meta["engine"])
    for latency in ("zero", "realistic"):
        r = res.get(latency)
        if not r:
            continue
        title = (
            "engine cost: venues answer at once, swaps land at once"
            if latency == "zero"
            else ("quotes ~200 ms, confirmation 2-2.8 s")
        )
        out += [f"## `MARKET_LATENCY={latency}` ({title})", "", "### Throughput by worker processes (closed loop)", ""]
        peaks = ", ".join(f"{w} -> {v:.1f}/s" for w, v in r["peak_by_workers"].items())
        out += [f"Peak by worker processes: {peaks}.", ""]
        rows: list[dict[str, Any]] = []
        for w, steps in r["throughput_by_workers"].items():
            rows += [{**s, "_w": w} for s in steps]
        out += _load_table(rows, "workers, clients", lambda s: f"{s['_w']}, {s['concurrency']}")
        out += ["", f"### Latency at fixed offered loads (open loop, {r['best_workers']} worker processes)", ""]
        out += _load_table(r["open_loop"], "rate/s", lambda s: f"{s['rate']:g}")
        out.append("")
    if res.get("threads"):
        out += [
            "## `WORKER_THREADS` (realistic, 1 worker process)",
            "",
            "The same worker with more Dramatiq threads, i.e. more messages in flight. Threads asleep through an "
            "order's mock delays (the ~200 ms quote, the 2-2.8 s landing) could do no more than threads / 2.6 s "
            "orders a second: 3 orders/s with 8 threads. More threads can still add throughput, because the "
            "messages in flight meet in the store and share its transactions (`workers/group_commit.py`).",
            "",
        ]
        rows = []
        for t, steps in res["threads"].items():
            rows += [{**s, "_t": t} for s in steps]
        out += _load_table(rows, "threads, clients", lambda s: f"{s['_t']}, {s['concurrency']}")
        out.append("")
    if res.get("fanout"):
        out += [
            "## Fan-out: concurrent WatchOrder streams and WebSockets",
            "",
            "Orders are placed with no worker running; client processes (`bench/fanout_client.py`, at most 2,500 "
            "streams each, so the load generator is not the ceiling) open every stream and wait for its `pending` "
            "event (the server has then registered it) before the workers start, so every later event is delivered "
            "live to every stream of its order. A stream is complete only when it received seq 1, 2, ... up to the "
            "order's last seq as stored (read with GetOrder afterwards), no gap, no repeat. RSS is every server "
            "process's (for `serve --processes N`, the N servers and their supervisor); per 1,000 streams is "
            "(RSS with the streams open - RSS before) / streams. `python -m bench.fanout --help` runs one of these "
            "on its own.",
            "",
            "| via | latency | streams | orders | server processes | client processes | streams complete "
            "| events delivered / expected | open all (s) | events run (s) | delivery p50 | delivery p99 "
            "| delivery max | server RSS before / streams open / peak (MiB) | server MiB per 1,000 streams "
            "| bridge RSS open / peak (MiB) | server CPU | bridge CPU | workers CPU | loadgen CPU | machine CPU "
            "| errors |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: "
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for f in res["fanout"]:
            d, rss, c = f["delivery_ms"], f["server_rss_mib"], f["cpu_cores_during_events"]
            b = f.get("bridge_rss_mib") or {}
            errors = ", ".join(f"{k} {v}" for k, v in (f.get("error_counts") or {}).items()) or (
                "; ".join(f["errors"]) or "-"
            )
            out.append(
                f"| {f.get('via', 'grpc')} | {f['latency']} | {f['streams']:,} | {f['orders']:,} | "
                f"{f.get('server_processes', 1)} | {f.get('client_processes', 1)} | {f['streams_complete']:,} | "
                f"{f['events_delivered']:,} / {f['events_expected']:,} | {f['open_s']} | {f['run_s']} | "
                f"{_f(d['p50'])} | {_f(d['p99'])} | {_f(d['max'])} | {rss['before_streams']} / "
                f"{rss['streams_open']} / {max(rss['peak_during_events'], rss['hwm'])} | "
                f"{_f(f.get('server_rss_mib_per_1000_streams'))} | "
                f"{_f(b.get('streams_open'))} / {_f(b.get('peak_during_events'))} | {_cpu(c, 'server')} | "
                f"{_cpu(c, 'bridge')} | {_cpu(c, 'workers')} | {_cpu(c, 'loadgen')} | {_cpu(c, 'machine')} | "
                f"{errors} |"
            )
        others = [
            f["cpu_cores_during_events"]["machine"] - f["cpu_cores_during_events"]["total"]
            for f in res["fanout"]
            if {"machine", "total"} <= set(f["cpu_cores_during_events"])
        ]
        if others:
            out += [
                "",
                f"Other work on the machine (other people's test suites) took {sum(others) / len(others):.2f} of "
                "its 2 cores on average while events were delivered in these runs (`machine CPU` minus the parts "
                "above): delivery latencies are those of a shared machine.",
            ]
        out.append("")
    br = res.get("bridge")
    if br:
        out += ["## Through the bridge (HTTP POST + one WebSocket per order)", ""]
        if "skipped" in br:
            out += [f"Skipped: {br['skipped']}.", ""]
        else:
            out += [
                "The bridge (`orderengine bridge`) is a gRPC client of the server; timestamps in its messages "
                "have millisecond precision.",
                "",
            ]
            for key, title in (
                ("zero", "zero latency, closed loop"),
                ("zero_open_loop", "zero latency, open loop"),
                ("realistic", "realistic latency, closed loop"),
            ):
                if br.get(key):
                    out += [f"### {title} ({br['workers'][key.split('_')[0]]} worker processes)", ""]
                    first = "clients" if key != "zero_open_loop" else "rate/s"
                    out += _load_table(
                        br[key], first, lambda s: str(s["concurrency"]) if s["mode"] == "closed" else f"{s['rate']:g}"
                    )
                    out.append("")
    out += _burst(res.get("burst"))
    out += _transports(res)
    out += _errors(res)
    out += _auth_cost(res, started=str(meta.get("started", "")))
    out += _brokers(res.get("brokers"))
    if "telemetry" in res:
        out += _telemetry(res["telemetry"])
    out += _cost(res.get("cost"))
    out += ["## Profile", "", *_profile(res), "", "## What limits it", "", *_limits(res), ""]
    out += [
        "## Before and after",
        "",
        "Each step measured with `python -m bench --quick --scenarios zero,realistic --workers 1` unless noted:",
        "",
        *OPTIMIZATION_LOG,
        "",
    ]
    return "\n".join(out)


def _burst(b: dict[str, Any] | None) -> list[str]:
    if not b:
        return []
    out = [
        "## Bursts: many orders placed at the same instant (issue 14, part 3)",
        "",
        f"Each round sends {b['grpc']['size'] if 'grpc' in b else '-'} orders at once (one task each, released "
        "together) and times each until its answer (`orderId`); each order is then watched to its final event (a "
        "WatchOrder stream, or a WebSocket opened after the answer through the bridge, as a browser does), and the "
        "system is left idle before the next round. One unmeasured round first opens the connections (over gRPC "
        "the load generator shares 4 channels; through the bridge it holds one HTTP connection per order). "
        f"`MARKET_LATENCY=zero`, {b['workers']} worker process(es). CPU: cores averaged over the rounds (from the "
        "burst to its last final event).",
        "",
        "| via | rounds x orders | answer p50 | p90 | p99 | max | errors | server | bridge | workers | postgres "
        "| machine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = ["grpc", "bridge", *sorted(k for k in b if k.startswith("grpc_p"))]
    for key in keys:
        r = b.get(key)
        if not r:
            continue
        a, c = r["answer_ms"], r["cpu_cores"]
        via = f"grpc, `serve --processes {r['server_processes']}`" if "server_processes" in r else key
        out.append(
            f"| {via} | {r['rounds']} x {r['size']} | {_f(a['p50'])} | {_f(a['p90'])} | {_f(a['p99'])} | "
            f"{_f(a['max'])} | {r['errors']} | {_cpu(c, 'server')} | {_cpu(c, 'bridge')} | {_cpu(c, 'workers')} | "
            f"{_cpu(c, 'postgres')} | {_cpu(c, 'machine')} |"
        )
    per_round = [f"{key}: " + ", ".join(f"{_f(x['p99'])}" for x in b[key]["per_round"]) for key in keys if key in b]
    out += [
        "",
        "p99 of each round, ms: " + "; ".join(per_round) + ".",
        "",
        "**Where the time goes** (issue 14 asked before changing anything; measured 2026-11-25 on this machine "
        "while other work kept it busy, load average 3-9): a burst is a queue on one core. ExecuteOrder alone "
        "(no workers, no watchers, 5 rounds of 200) costs the server process 2.7-4.0 ms of CPU per call, so 200 "
        "at once are 0.5-0.8 s of one core before the last answer, whatever the awaits; the bridge adds 1.0-1.6 "
        "ms of its own CPU per POST. Timing each await inside ExecuteOrder under bursts: most of an answer's "
        "time passes before the servicer starts (p50 0.2-2.3 s by round: the call waits its turn on the loop "
        "behind the others), then the price-impact check (p50 30-860 ms), `create_order` (p50 70-520 ms), the "
        "rate limiter (p50 1-220 ms) and the enqueue (p50 20-120 ms), each mostly waiting for the loop, the "
        "connection pool and a busy PostgreSQL. py-spy on the server under bursts: ExecuteOrder 28% of the "
        "samples (its `create_order` 17%, rate limit 5%, price impact 4% after sharing the pools read, 10% "
        "before), gRPC's own machinery and uvloop under `Runner.run` 22% (native code), the enqueue threads "
        "(`broker.enqueue`, Redis Lua) about 10%. On a quiet machine (2026-12-06, `python -m bench.cost`) "
        "accepting an order costs the server 1.2-1.3 ms of CPU, so 200 at once are 0.25 s of one core before the "
        "last answer even with the core to itself: p99 < 100 ms for 200 at once needs under 0.5 ms per call, or "
        "the calls spread over server processes on cores of their own (`serve --processes N`, the row above; on "
        "this machine those processes share the 2 cores with the workers and PostgreSQL, which work off the same "
        "burst at the same time). Tried and not kept: a server pool of 40 PostgreSQL connections instead "
        "of 20 (ExecuteOrder-only bursts, alternated: gRPC p99 769-839 ms against 868-935, the bridge's "
        "1,073-1,140 against 1,060-1,075, CPU per call unchanged), and enqueuing a burst from draining threads "
        "(below).",
        "",
    ]
    return out


TRANSPORT_NAMES = {
    "grpc": "native gRPC",
    "websocket": "WebSocket (bridge)",
    "grpc-web": "gRPC-Web (bridge)",
}


def _transports(res: dict[str, Any]) -> list[str]:
    t = res.get("transports")
    if not t:
        return []
    name = TRANSPORT_NAMES.get
    out = [
        "## Transports: native gRPC, the bridge's WebSocket and its gRPC-Web",
        "",
        "The same orders watched three ways on one system (zero latency, "
        f"{t['workers']} worker process(es)): `WatchOrder` on the gRPC server's port; the bridge's HTTP POST + "
        "one WebSocket per order (JSON, millisecond timestamps); the bridge's gRPC-Web, ExecuteOrder + one "
        "`WatchOrder` POST per order over HTTP/1.1 (binary frames read as they arrive, as a browser's typed client "
        "does; a stream ended with UNAVAILABLE is resumed from its last seq, as client/web's example does). "
        "The bridge is one process, a gRPC client of the server.",
        *_others_note(t),
        "",
        "### Under load (closed loop)",
        "",
    ]
    rows = [{**r, "_t": k} for k, steps in t["load"].items() for r in steps]
    out += _load_table(rows, "transport, clients", lambda r: f"{name(r['_t'], r['_t'])}, {r['concurrency']}")
    if t.get("light"):
        out += ["", "### Lightly loaded (open loop): per-event latency of the transport itself", ""]
        rows = [{**r, "_t": k} for k, steps in t["light"].items() for r in steps]
        out += _load_table(rows, "transport, rate/s", lambda r: f"{name(r['_t'], r['_t'])}, {r['rate']:g}")
    out += [
        "",
        "### Streaming throughput (fan-out: many streams per order)",
        "",
        "As in the fan-out section: orders placed with no worker running, every stream open with its `pending` "
        "event before the workers start, then every later event delivered live to every stream of its order. "
        "**live events/s** = events delivered live / time from starting the workers to the last stream's end.",
        "",
        "| transport | streams | orders | streams complete | live events | live events/s | delivery p50 "
        "| delivery p99 | delivery max | CPU server | CPU bridge | CPU loadgen | bridge CPU per event (µs) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for k, f in t["fanout"].items():
        d, c = f["delivery_ms"], f["cpu_cores_during_events"]
        per_event = (
            f"{1e6 * c['bridge'] * f['run_s'] / d['n']:.0f}" if k != "grpc" and d["n"] and "bridge" in c else "-"
        )
        out.append(
            f"| {name(k, k)} | {f['streams']:,} | {f['orders']} | {f['streams_complete']:,} | {d['n']:,} | "
            f"**{_f(f.get('live_events_per_s'))}** | {_f(d['p50'])} | {_f(d['p99'])} | {_f(d['max'])} | "
            f"{_cpu(c, 'server')} | {_cpu(c, 'bridge')} | {_cpu(c, 'loadgen')} | {per_event} | "
            f"{'; '.join(f['errors']) or '-'} |"
        )
    return [*out, "", *GRPC_WEB_RELAY_NOTE, ""]


def _others_note(t: dict[str, Any]) -> list[str]:
    """How much of the machine other work took during this section's windows (`machine - total`)."""
    runs = [r["cpu_cores"] for kind in ("load", "light") for steps in t[kind].values() for r in steps]
    runs += [f["cpu_cores_during_events"] for f in t["fanout"].values()]
    shares = [c["machine"] - c["total"] for c in runs if "machine" in c and "total" in c]
    if not shares:
        return []
    avg = sum(shares) / len(shares)
    advice = ": compare the transports with each other (measured back to back), not with other sections."
    return ["", f"Other work on the machine took {avg:.2f} cores on average during these windows" + advice]


def _brokers(br: dict[str, Any] | None) -> list[str]:
    if not br:
        return []
    out = ["## Dramatiq broker: Redis and RabbitMQ (`BROKER_URL`)", ""]
    if "skipped" in br:
        return [*out, f"Skipped: {br['skipped']}.", ""]
    out += [
        f"The same system ({br['workers']} worker processes) with its messages on Dramatiq's Redis broker (the "
        "default: REDIS_URL) and then on RabbitMQ (`BROKER_URL=amqp://...`, a private node on this machine, "
        "publisher confirms on), back to back. WatchOrder fan-out and event publishing use Redis either way. "
        "The `rabbitmq` column is the RabbitMQ node's CPU."
        + (f" Measured by `{br['measured']['command']}` at {br['measured']['started']}." if "measured" in br else ""),
        "",
        "CPU per confirmed order (ms of one core; the fairest comparison on a shared machine, where throughput is "
        "bounded by the cores the run gets):",
        "",
        "| broker | latency, clients | confirmed/s | server | workers | broker process | PostgreSQL | engine total |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for latency in ("zero", "realistic"):
        for kind, name in (("redis", "Redis"), ("amqp", "RabbitMQ")):
            for r in br.get(f"{kind}_{latency}", []):
                rate, c = r["throughput_per_s"], r["cpu_cores"]
                if not rate:
                    continue
                ms = {k: c.get(k, 0.0) / rate * 1000 for k in ("server", "workers", "redis", "rabbitmq", "postgres")}
                broker_ms = ms["rabbitmq"] if kind == "amqp" else ms["redis"]
                total = sum(ms.values())
                out.append(
                    f"| {name} | {latency}, {r['concurrency']} | {_f(rate)} | {_f(ms['server'], 2)} | "
                    f"{_f(ms['workers'], 2)} | {_f(broker_ms, 2)} | {_f(ms['postgres'], 2)} | {_f(total, 2)} |"
                )
    out += [""]
    for latency in ("zero", "realistic"):
        rows: list[dict[str, Any]] = []
        for kind, name in (("redis", "Redis"), ("amqp", "RabbitMQ")):
            rows += [{**s, "_b": name} for s in br.get(f"{kind}_{latency}", [])]
        if rows:
            out += [f"### `MARKET_LATENCY={latency}` (closed loop)", ""]
            out += _load_table(rows, "broker, clients", lambda s: f"{s['_b']}, {s['concurrency']}")
            out += [""]
    return out


def _errors(res: dict[str, Any]) -> list[str]:
    """The first error messages each run saw (the full samples are in the JSON), so a count is never unexplained."""
    seen: dict[str, int] = {}
    runs = _all_load_runs(res)
    samples = [e for r in runs for e in r.get("error_samples", [])]
    samples += [e for f in res.get("fanout", []) for e in f.get("errors", [])]
    samples += [e for f in ((res.get("transports") or {}).get("fanout") or {}).values() for e in f.get("errors", [])]
    for e in samples:
        key = " ".join(e.split())[:160]
        seen[key] = seen.get(key, 0) + 1
    if not seen:
        return []
    lines = ["## Errors seen", "", "First messages of the errors counted above (up to 3 sampled per run):", ""]
    lines += [f"- `{k}` ({n} samples)" for k, n in sorted(seen.items(), key=lambda kv: -kv[1])]
    return [*lines, ""]


def _all_load_runs(res: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for latency in ("zero", "realistic"):
        r = res.get(latency)
        if r:
            for steps in r["throughput_by_workers"].values():
                runs += steps
            runs += r["open_loop"]
    for steps in (res.get("threads") or {}).values():
        runs += steps
    br = res.get("bridge") or {}
    for key in ("zero", "zero_open_loop", "realistic"):
        runs += br.get(key) or []
    tr = res.get("transports") or {}
    for kind in ("load", "light"):
        for steps in (tr.get(kind) or {}).values():
            runs += steps
    return runs


def _fanout_limits(fan: list[dict[str, Any]]) -> list[str]:
    """What bounds the fan-out figures, from this run's numbers."""
    per_1000 = [f["server_rss_mib_per_1000_streams"] for f in fan if f.get("server_rss_mib_per_1000_streams")]
    mib = sum(per_1000) / len(per_1000) if per_1000 else None
    grpc_runs = [f for f in fan if f.get("via", "grpc") == "grpc" and f.get("server_processes", 1) == 1]
    steady = [f for f in grpc_runs if f["streams_per_order"] == 1]
    burst = [f for f in grpc_runs if f["streams_per_order"] > 1 and f["streams"] >= TARGET_WATCHERS]
    bridge = [f for f in fan if f.get("via") == "bridge"]
    lines = [
        "- **Fan-out: the stream ceiling was a gRPC setting, not gRPC Python.** gRPC's core server queues calls "
        "that arrive faster than the event loop picks them up, and answers CANCELLED past "
        "`grpc.server.max_pending_requests` (default 1,000, rejecting at random up to "
        "`grpc.server.max_pending_requests_hard_limit`, 3,000) or after 30 s in that queue "
        '(`grpc.server_max_unrequested_time_in_server`): that was the "few thousand streams per process" of '
        "earlier runs (and of `python -m bench.stream_limit` with gRPC's defaults). Both queue limits are now "
        "`GRPC_MAX_PENDING_CALLS` (default 30,000) and the wait 120 s (`server/watch_limit.py`); the deliberate "
        "cap is `WATCH_MAX_STREAMS` (default 20,000 streams per server process), past which a new stream is "
        "answered RESOURCE_EXHAUSTED with a message naming the limit. Checked with an independent client too "
        "(Node's `@grpc/grpc-js` 1.14.7, in a scratch folder, against a stock `orderengine serve`): 10,000 "
        "`WatchOrder` streams on one connection all opened; 25,000 over 10 connections gave 20,000 open and 5,000 "
        "RESOURCE_EXHAUSTED, none CANCELLED.",
    ]
    if mib is not None:
        lines.append(
            f"- **Memory: about {mib:.0f} MiB of server RSS per 1,000 open streams** (grpc's per-call state, the "
            "handler's coroutine and its queue), so the default cap of 20,000 is about "
            f"{20 * mib + 90:.0f} MiB per process; lower `WATCH_MAX_STREAMS` on a smaller machine."
        )
    text = (
        "- **Delivery: one message costs the server about 0.1 ms of CPU**, nearly all inside grpc.aio's Cython "
        "core (py-spy shows it as self time of the event loop's `Runner.run`; the engine's own Python per "
        "message is a conversion and a queue hop)."
    )
    if steady:
        f = steady[0]
        text += (
            f" With one watcher per order ({f['streams']:,} orders) events follow the workers' pace and delivery "
            f"p99 was {_f(f['delivery_ms']['p99'])} ms."
        )
    if burst:
        f = burst[0]
        text += (
            f" With {f['streams_per_order']} watchers on each of {f['orders']} orders, every transition is a burst "
            f"of {f['streams_per_order']} messages and {f['events_expected'] - f['streams']:,} messages leave "
            f"within seconds: p99 {_f(f['delivery_ms']['p99'])} ms, which is CPU, not a limit; "
            "`serve --processes N` spreads such bursts over cores."
        )
    lines.append(text)
    if bridge:
        f = bridge[0]
        b = f.get("bridge_rss_mib") or {}
        per_socket = (b["streams_open"] - b["before_streams"]) * 1024 / f["streams"] if b.get("streams_open") else None
        lines.append(
            f"- **The bridge** holds a WebSocket and a gRPC stream per browser: {f['streams']:,} sockets took "
            f"{_f(b.get('streams_open'))} MiB ({_f(per_socket, 0)} KiB each) and every message crosses two "
            "Python protocol stacks (gRPC in, JSON over WebSocket out), so its delivery tail under a burst is "
            "longer than the server's; run several bridges behind a load balancer for more."
        )
    return lines


def _share(res: dict[str, Any], proc: str, func: str, kind: str = "inclusive") -> str:
    """`12%` of `proc`'s profile samples in the function named `func` (`file:function`), or `n/a`."""
    prof = (res.get("profile") or {}).get(proc) or {}
    for x in prof.get(kind, []):
        if x["function"] == func:
            return f"{x['share']:.0%}"
    return "n/a (not in the top functions)"


def _pkg(res: dict[str, Any], proc: str, pkg: str) -> str:
    prof = (res.get("profile") or {}).get(proc) or {}
    for x in prof.get("self_by_package", []):
        if x["function"] == pkg:
            return f"{x['share']:.0%}"
    return "n/a"


def _telemetry(t: dict[str, Any]) -> list[str]:
    """The cost of metrics and tracing (bench/telemetry_cost.py)."""
    out = [
        "## What seeing inside costs (issue 11)",
        "",
        f"The same fixed-rate load ({_f(t['rate'], 0)} orders/s, zero latency, one server and one worker process) "
        f"with telemetry off, with metrics (each process serving /metrics, scraped every {t['scrape_every_s']:g} s) "
        "and with metrics and tracing (OTLP/HTTP to a receiver in the load generator), rounds alternating the three. "
        "CPU is the server's and the worker's, per order placed. "
        f"Run {t.get('started', '?')} (`python -m bench --scenarios telemetry`), machine load average "
        f"{_f((t.get('loadavg_before') or [0])[0])} before it: the machine was shared; compare rows of one run only.",
        "",
        "| telemetry | round | server cores | worker cores | CPU ms/order | e2e p50 ms | e2e p99 ms | confirmed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, runs in t["runs"].items():
        for r in runs:
            c, e = r["cpu_cores"], r["e2e_ms"]
            out.append(
                f"| {mode} | {r['round']} | {_f(c.get('server'), 3)} | {_f(c.get('workers'), 3)} | "
                f"{_f(r['engine_cpu_ms_per_order'], 2)} | {_f(e.get('p50'))} | {_f(e.get('p99'))} | {r['confirmed']} |"
            )
    means = {
        mode: sum(r["engine_cpu_ms_per_order"] for r in runs) / len(runs) for mode, runs in t["runs"].items() if runs
    }
    if means.get("off"):
        base = means["off"]
        parts = [f"{mode} {v:.2f} ms ({100 * (v - base) / base:+.0f}%)" for mode, v in means.items()]
        spreads = {
            mode: max(r["engine_cpu_ms_per_order"] for r in runs) - min(r["engine_cpu_ms_per_order"] for r in runs)
            for mode, runs in t["runs"].items()
            if runs
        }
        spread = ", ".join(f"{mode} {v:.2f} ms" for mode, v in spreads.items())
        out += [
            "",
            "Mean CPU per order: " + ", ".join(parts) + f"; {t['spans_received']} spans received. "
            f"Spread between rounds of one mode: {spread}; a smaller difference is the machine, not the code.",
            "",
        ]
    return out


def _per_order_ms(c: dict[str, float], key: str, rate: float) -> str:
    return f"{1000 * c[key] / rate:.1f}" if key in c and rate else "-"


def _limits(res: dict[str, Any]) -> list[str]:
    """The analysis: figures from this run, reasoning from the profile and the code it points at."""
    zero, real = res.get("zero"), res.get("realistic")
    lines: list[str] = []
    if zero:
        best = max(
            (s for steps in zero["throughput_by_workers"].values() for s in steps), key=lambda s: s["throughput_per_s"]
        )
        c, rate = best["cpu_cores"], best["throughput_per_s"]
        parts = ", ".join(
            f"{name} {_per_order_ms(c, key, rate)}"
            for name, key in (
                ("server", "server"),
                ("workers", "workers"),
                ("PostgreSQL", "postgres"),
                ("Redis", "redis"),
                ("load generator", "loadgen"),
            )
        )
        light = min(zero["open_loop"], key=lambda r: r["rate"]) if zero["open_loop"] else None
        lines.append(
            f"- **`zero`: bound by CPU.** Peak {rate:.0f} orders/s with {zero['best_workers']} "
            f"worker process(es), the machine {_cpu(c, 'machine')} of 2 cores busy. CPU per confirmed order, in ms: "
            f"{parts}; {_per_order_ms(c, 'total', rate)} ms in all. 500 orders/s on 2 cores needs under 4 ms per "
            "order for everything, load generator included; more worker processes only share the same cores "
            "(see the ramp). At zero latency each order is one Dramatiq message: one guarded statement takes it "
            "from `pending` to `submitted` (three events), then the settlement (psycopg pipeline mode, three round "
            "trips). Orders that reach the store together share those transactions (`workers/group_commit.py`): "
            "the landings of a batch lock and write each pool once and commit once, the submissions commit "
            "together, and a batch's events, the protobuf the server streams, go to Redis in one round trip. So "
            "throughput grows with the orders in flight (the ramp's clients, up to `WORKER_THREADS` per worker)."
            + (
                f" Lightly loaded ({light['offered_per_s']:.0f}/s, open loop) an order takes "
                f"{_f(light['e2e_ms']['p50'])} ms end to end (p50), including up to 25 ms of an idle consumer's "
                "poll backoff (`workers/worker.py` IDLE_POLL_MS)."
                if light
                else ""
            )
        )
    if real:
        peaks_text = ", ".join(f"{w}: {v:.0f}/s" for w, v in real["peak_by_workers"].items())
        threads = res.get("threads") or {}
        lines.append(
            f"- **`realistic`: bound by CPU too.** Peak {real['best_throughput_per_s']:.0f} orders/s ({peaks_text}). "
            "No thread waits on a mock delay: the ~200 ms venue latency and the 2-2.8 s confirmation are both "
            "delayed Dramatiq messages, so thousands of orders are in flight while the threads are free"
            + (" (the WORKER_THREADS table compares thread counts)." if threads else ".")
            + " Each order is two delayed messages: the server enqueues the first for when the venues' quotes are "
            "in, and it commits `START`, the route, the submission and `SUBMIT` together; the second, due when the "
            "transaction lands, settles. A delayed message passes through Redis twice (into `orders.DQ`, fetched, "
            "enqueued again when due, acked, fetched, acked) and crosses the worker's threads once more, so the "
            "landings of a worker's orders that fall within the same 100 ms share one (`workers/revisits.py`, "
            "`advance_orders`); the first message is still one per order. With ~3.3 s end to end (nearly all of "
            "it the mock's latency), C clients in a closed loop can offer at most about C / 3.3 orders/s: the "
            "600-client step is near that bound, the 1,200-client step is bound by the CPU."
            + " At high concurrency some orders fail with SLIPPAGE_EXCEEDED: hundreds of orders quoted against "
            "the same pool before any settles move it more than their 50 bps allowance, as on a real venue."
        )
    fan = res.get("fanout") or []
    if fan:
        lines += _fanout_limits(fan)
    if res.get("profile") and "skipped" not in res["profile"]:
        svc = "server/servicer.py:OrderService"
        lines.append(
            "- **Profile (zero latency).** Worker, share of samples (self): psycopg "
            f"{_pkg(res, 'worker', 'psycopg')}, Dramatiq {_pkg(res, 'worker', 'dramatiq')}, threading "
            f"{_pkg(res, 'worker', 'threading')}, the engine's own code {_pkg(res, 'worker', 'workers')}; "
            f"`workers/pipeline.py:advance` is {_share(res, 'worker', 'workers/pipeline.py:advance')} inclusive. "
            f"Server: `{svc}.WatchOrder` {_share(res, 'server', f'{svc}.WatchOrder')}, "
            f"`{svc}.ExecuteOrder` {_share(res, 'server', f'{svc}.ExecuteOrder')} inclusive; the rest is "
            "grpc.aio's own machinery on the event loop. The engine's Python is a small share: the costs are the "
            "drivers and frameworks per statement, per message and per stream write."
        )
    lines += [
        "- On two cores the load generator itself (one Python process decoding every event of every order) takes "
        "a share of the machine; the `loadgen` column shows how much.",
        "",
        "**What it would take, by expected gain** (CPU per order part by part is in its own section above; 500 "
        "orders/s on 2 cores is 4 ms per order for everything): (1) the server's ExecuteOrder, about 1.2-1.5 ms of "
        "its CPU against the floor's ~0.2 ms for a call that does nothing: the rate limit's Redis script, the "
        "price-impact route, the store call and the enqueue's thread hop each cost 0.1-0.3 ms (the inserts of "
        "calls that meet already share a transaction; enqueuing a burst from a few threads measured no gain); "
        "(2) the workers' ~1.7 ms at `zero` and ~3.5 ms at `realistic`, of which Dramatiq's per-message machinery "
        "(the hand-off between its threads and the event loop, a fetch and an ack script per message, two of each "
        "per delayed hop) is the largest share, more than psycopg: under `realistic` the quote's delayed message "
        "is still one per order, and sharing it as the landings' are would cost ExecuteOrder the wait for others "
        "to join (up to 25 ms) and needs each caller's trace context carried into the shared message; (3) the "
        "load generator's ~1 ms, which an outside load generator on other cores would not take from the engine; "
        "(4) PostgreSQL's ~1 ms: two "
        "UPDATEs of the order and five event rows per order, each UPDATE writing every index of `orders` (not "
        "HOT); (5) more cores: every part scales out by processes, and here all of them share the same two.",
    ]
    return lines


# Measured once by hand when gRPC-Web was added (issue 13); not regenerated by the bench.
GRPC_WEB_RELAY_NOTE = [
    "**gRPC-Web relays bytes, it does not decode; both were measured** when it was added (issue 13, on this "
    "shared machine). Decoding and re-encoding a `WatchOrderResponse` with the upb protobuf runtime costs 0.6 µs "
    "(a `pending` event, 59 bytes) to 1.0 µs (a `confirmed` event with its route, 276 bytes), best of five "
    "`timeit` runs. In the fan-out above (1,000 gRPC-Web streams over 10 orders, 4,000 live events), three runs "
    "of each, alternated, the bridge spent 90, 105 and 90 µs of CPU per event relaying bytes and 103, 110 and "
    "84 µs decoding and re-encoding each message: the same within the noise, as the 1% the micro-benchmark "
    "predicts. The bytes relay is kept because it needs no message or method of its own: an RPC the `.proto` "
    "gains works through a bridge built before it, and the service alone judges each request "
    "(`server/bridge/grpc_web.py`).",
]

OPTIMIZATION_LOG = [
    "| step | zero, 1 worker (closed loop) | realistic (closed loop) |",
    "| --- | ---: | ---: |",
    "| first run of the bench (`a2533a6`, machine shared with test suites) | 108/s | 44/s (1 worker), 75/s (2) |",
    "| same code on a quiet machine (`f5f7a7f`, `--quick`) | 153/s | - |",
    "| quote latency as a delayed message, settle in the same message when due, no reloads, one-statement "
    "order insert, partial pool refresh | 152/s | - |",
    "| + uvloop in server and workers | 186/s | - |",
    "| + async enqueue through the broker's Lua script (`820a50e`) | 212/s | 146/s (1 worker, c=500) |",
    "| + enqueue through the broker's public `enqueue` on the queue's own threads instead of the Lua script, one "
    "event path, the lifecycle table (issue 16; A/B back to back, `--quick --scenarios zero`, 1 and 2 workers, on a "
    "machine saturated by other work, load 13-20) | peaks before 54/s and 95/s, after 77/s and 77/s: within the "
    "noise; server CPU per order 3.3-5.1 ms before, 3.4-5.2 ms after | - |",
    "| the engine after issues 9-18 (accounts, order types, telemetry, ...; `1f66225`, 2026-11-25, quiet machine, "
    "c=32 / c=128) | 46/s / 44/s, 35 ms of CPU per order (server 7.9, workers 16.3, PostgreSQL 7.1) | - |",
    "| + the pools-moved message only when an order rests, bounds only for the directions orders wait on; "
    "`pending` to `submitted` in one guarded statement at zero latency; settlement in pipeline mode; events "
    "published as protobuf; shared pool reads under bursts (`344d06c`, same day, quiet machine) | 62/s / 53/s, "
    "28-32 ms of CPU per order (server 8.2-10.2, workers 10.3-11.6, PostgreSQL 5.5-6.2) | - |",
    "| the same code (`2ed540c`) on 2026-12-06's machine, quiet (the gRPC floor ran 2,449 orders/s there against "
    "739 on 2026-11-25: the machine, not the code, had been 3.3x slower), c=32 / c=128 | 206/s / 188/s, 9.0-9.8 "
    "ms of CPU per order (server 2.7-2.9, workers 2.9-3.1, PostgreSQL 2.1-2.5, load generator 1.1) | - |",
    "| + `events_after` checks the owner on the order's own row (`d1359e2`; a plan made before the tables had "
    "statistics hashed all of the owner's orders on every stream's replay read: PostgreSQL 0.8 ms per new stream "
    "at 4,000 orders, growing with the account, now 0.06 ms) | 215/s / 225/s, 8.2-8.6 ms of CPU per order "
    "(server 2.5, workers 2.8, PostgreSQL 1.7-1.9) | - |",
    "| + `pools.state` stored uncompressed (`47c4a8a`): a settlement's pool UPDATE costs embedded PostgreSQL "
    "96-103 µs instead of 162-176 µs with pglz (3,000 updates of the largest pool each); about 0.09 ms per order, "
    "below what a whole-system run resolves | - | - |",
    "| + `realistic`: after the quote's latency, ROUTE, the submission and SUBMIT commit in one guarded statement "
    "as they already did at zero latency (`0f81b97`; `python -m bench.cost --latency realistic --workers 2`, 1,500 "
    "orders, A/B back to back on a machine 1.7x slower than the morning's) | - | work phase 114.0 -> 133.6 "
    "orders/s; worker CPU 9.98 -> 8.55 ms per order, PostgreSQL 3.54 -> 2.83 |",
    "| + the order and its mempool entry in one read; a commit's events published in one Redis round trip "
    "(`e3b8653`); an order's routing computes its route only, not GetQuote's per-venue quotes (`a0aa100`, 94 µs "
    "per order in a micro-benchmark) | bench.cost A/B alternated: within the noise (work phase 6.49-7.20 ms "
    "per order either way) | within the noise (10.98-11.06 ms per order) |",
    "| + `WORKER_THREADS` 8 instead of 16 (`10fe3f8`; `python -m bench --scenarios realistic --workers 2`, "
    "alternated 8, 16, 8, 16; fewer settlements queue on the same pools' row locks) | no difference | closed-loop "
    "peaks 110/106 (8) vs 98/102 (16) orders/s; open loop at 200/s offered 94/86 vs 65/74 confirmed/s; "
    "PostgreSQL 2.2-2.3 vs 2.8-2.9 ms per order |",
    "| + `realistic`: the server enqueues a market order's first message for when the venues' quotes are in, and "
    "that message commits START with ROUTE, the submission and SUBMIT (no message of its own for `routing`; "
    "`python -m bench.cost --latency realistic --workers 2`, A/B alternated twice) | - | work phase 117/122 -> "
    "127/160 orders/s, live 94/94 -> 126/111; worker CPU (live) 11.3/11.3 -> 8.5/9.8 ms per order; broker script "
    "calls 15.2 -> 12.6 per order |",
    "| + a new order's `pending` is stored and observed but not published: no one can watch an order before its "
    "client has its id (`d5f697b`; `python -m bench.cost --latency zero`, A/B alternated twice) | accept: server "
    "CPU 2.26/1.72 vs 2.44/2.79 ms per order, 430/557 vs 411/355 orders/s | - |",
    "| + landings that meet in the store share one transaction (group commit, `2d44185`, `workers/group_commit.py`): "
    "one lock and one write of each pool, one commit and one publish for the batch, each swap applied on the pools "
    "as the one before left them; a failed batch lands one by one (`python -m bench.cost --orders 3000`, 8 "
    "threads, A/B alternated 3x) | live phase 238/229/149 -> 448/263/420 orders/s; CPU per order, all parts, "
    "6.70/6.66/10.33 -> 3.34/5.79/3.66 ms | - |",
    "| + `route_and_submit` calls that meet share one transaction and one publish (`6edd11a`; `python -m bench.cost "
    "--orders 3000 --threads 32`, A/B alternated 3x; at 8 threads batches held 1-2 orders and showed no gain) | "
    "work phase 620/593/488 -> 681/596/680 orders/s | - |",
    "| + `WORKER_THREADS` 32 instead of 8 (`189fd02`): more messages in flight make bigger group commits (`python -m "
    "bench.cost`, 8/16/32/64 threads, twice; realistic: `--latency realistic --workers 2 --orders 1500`, 8/32/64) "
    "| work phase 368,227 / 627,460 / 752,682 / 758,682 orders/s | work phase 247 / 288 / 223, live 210 / 283 / "
    "266 orders/s |",
    "| + new orders that meet share one transaction (`create_order` through the same group commit; idempotency "
    "keys in key order, so batches in two server processes wait on shared keys in the same order; `python -m "
    "bench.cost --orders 3000`, A/B alternated 3x, on a slow machine: speed probe 33 ms against 18.5-20 in the full "
    "runs) | accept phase 374/263/350 -> 382/316/389 orders/s; PostgreSQL CPU per accepted order 0.61/1.30/0.59 -> "
    "0.46/0.55/0.44 ms; the server's own CPU unchanged (2.62/3.16/2.81 -> 2.65/3.14/2.56 ms), so bursts too: "
    "`--scenarios burst` alternated once, gRPC p99 1,813 -> 1,596 ms, bridge 1,575 -> 1,749 (noise) | - |",
    "| tried and not kept: the workers' first read of an order (`order_at_work`) batched like the writes "
    "(`python -m bench.cost --orders 3000 --threads 32`, A/B alternated 3x) | live phase 638/410/638 vs "
    "498/546/542 orders/s: within the noise | - |",
    "| tried and not kept: a delayed message that comes due runs in the worker process that fetched it, acked on "
    "its delay queue, instead of a second trip through Redis, and the trigger engine's delay queue polled every "
    "250 ms (`7b3574b`..`5a70cd3`, reverted; `python -m bench.cost --latency realistic --workers 2 --orders 1000`, "
    "A/B alternated twice) | - | work phase 77.5/71.5 -> 71.4/80.3 orders/s (noise); worker CPU 15.8/16.8 -> "
    "15.2/13.2 ms per order; broker script calls 14.6/14.7 -> 11.8/11.5 per order. Not kept: no throughput "
    "gain, and it overrode Dramatiq's private `Worker._add_consumer` and built its private `_WorkQueueItem` |",
    "| tried and not kept: a settlement's locking read sends back a pool's state only when its version moved "
    "since this process read or wrote it (`python -m bench.cost`, alternated: worker 2.66-2.89 ms per order "
    "either way, within the noise) | - | - |",
    "| + array parameters in binary (`%b`: psycopg's text array dumper escapes each element through a regex, and "
    "the events' jsonb payloads are full of quotes) and `Pool.has` by mint (`b8d3c49`; micro-benchmarks: dumping a "
    "`route_and_submit` statement's parameters 76 -> 24 µs, `best_route` over the bench's order mix 77 -> 69 µs; "
    "`python -m bench.cost --orders 3000`, A/B alternated 3x) | work phase worker CPU 1.76/2.10/1.92 -> "
    "1.61/2.06/2.31 ms per order: within the noise, as ~0.06 ms of ~1.9 is | - |",
    "| + the orders of a worker whose transactions land in the same 100 ms share one delayed message "
    "(`workers/revisits.py`, actor `advance_orders`, `1189be1`): a delayed message on Redis is enqueued, fetched, "
    "enqueued again when due and acked twice, one more trip through the worker's threads, and cost more than the "
    "rest of the order; an order is looked at up to "
    "100 ms late, never early. `python -m bench.cost --latency realistic --workers 2 --orders 1500`, A/B alternated "
    "3x; the bound, measured once by settling at once instead of waiting for the landing: work phase 321/s, worker "
    "3.55 ms | - | work phase 238/175/177 -> 254/230/195 orders/s, worker CPU 4.28/6.28/6.25 -> 3.52/3.89/4.82 ms "
    "per order; live 208/201/171 -> 256/278/224 orders/s, worker 4.81/5.27/5.93 -> 3.29/3.27/4.09 ms. One run of "
    "three after it failed 234 of 3,200 orders SLIPPAGE_EXCEEDED (the 3,000 accepted while the workers were stopped "
    "are quoted against the same pools; faster routing quotes more of them before any lands), none before it. "
    "`python -m bench --quick --scenarios realistic --workers 1`, the session's first commit (`27ce0ac`) and the "
    "last (`f2e43be`) alternated: closed loop, 500 clients, 168/146/157/160 -> 172/149/169 orders/s (near the "
    "clients' bound, ~500 / 3 s); open loop at 194/s offered, 120/139/175/112 -> 189/167/151/s confirmed |",
    "",
    "The enqueue alone, one process, 4000 messages 64 at a time on an embedded Redis (`python -m bench.enqueue_cost`, "
    "and the same loop over the earlier script path): 125-137 µs of CPU per message through the Lua script, "
    "129-143 µs through `broker.enqueue` on threads; wall time per message 280-410 µs and 250-320 µs. The public "
    "path costs no measurable CPU, so no broker-specific fast path is kept.",
    "",
    "Resting orders (issue 10; `python -m bench.triggers`, its own embedded stores, the in-process trigge"
    "r engine; run on the shared 2-core machine at load average 14-24, so the spread is wide): with **100"
    ",000 resting limit orders** on one direction, a committed pool move to the resting order's `routing`"
    " event committed and its message sent takes **p50 10.3 ms, p99 80 ms** (50 moves; a second run at hi"
    "gher load: p50 60 ms, p99 352 ms); the broker's delivery of the “pools moved” message to an idle wor"
    "ker adds up to its 25 ms poll. A move that makes none reachable costs one index range scan: **5 ms**"
    " (48 ms under the heavier load). One +1 % move that makes **1,000** of them reachable fires all 1,00"
    "0 in **3.5 s** one at a time (3.5 ms each: a guarded UPDATE and an enqueue), **2.4 s** with the engi"
    "ne firing 8 at a time under the heavier load. The work follows the orders made reachable, not the 10"
    "0,000 resting.",
    "",
    "Events published as the protobuf message WatchOrder streams (issue 14, part 2), measured in CPU time "
    "(process time, so it holds on a busy machine) on a five-event order: a server parses an event in 3.0 "
    "µs instead of decoding JSON into an event in 17.6 µs, and builds and serializes each stream's message "
    "in 4.4 µs instead of 22.3 µs; a worker encodes an event in 17.8 µs instead of 15.2 µs. So about 0.16 "
    "ms less server CPU per order with one watcher, 18 µs per event per extra watcher. Quick `zero` runs "
    "before and after, alternated on a machine saturated by other work (load average 5-9), could not tell "
    "the difference (server 8-13 ms of CPU per order in both).",
    "",
    'Most of the 2026-11-25 "regression" was the machine: on 2026-12-06 the same commit that ran 61 orders/s '
    "then ran 206/s, and the do-nothing gRPC floor 2,449/s against 739/s. Compare figures of one day, and CPU per "
    "order part by part (`python -m bench.cost`, the section above) across days. "
    "Where the 2026-11-25 regression came from, bisected on one machine with the same command (`python -m "
    "bench --quick --scenarios zero --workers 1`, c=32 and c=128; the later points shared the machine with "
    "other work starting up): `bfd6f6a` 90/s and 79/s (the commit whose full run gave 164/s the day before, on "
    "a faster or quieter machine), `0d6f9dc` 69/s and 67/s, seams (issue 16) 57/s and 64/s, telemetry (issue "
    "11) 67/s and 67/s, order types (issue 10) 35/s and 43/s, accounts (issue 9) 44/s and 40/s. The order "
    "types' trigger engine cost the most: every settlement sent a pools-moved message whose actor computed "
    "price bounds for every token pair (Decimal arithmetic, 12% of the worker's samples) even with no order "
    "resting. Now the settlement's commit asks whether any order rests (in the same round trip) and the "
    "message goes only then, and bounds are computed only for the directions open orders wait on.",
    "",
    "Bursts (issue 14, part 3): concurrent price-impact checks share one read of the pools' versions (the "
    "read that starts after each call), so a burst of 200 ExecuteOrder makes a few reads instead of 200; "
    "in py-spy the price-impact check went from 9.7% to 4.1% of the server's samples under bursts. Enqueuing "
    "a burst from a few draining threads (one hop back to the loop per 16 messages) instead of one hop per "
    "message was tried and not kept: no measurable change in server CPU per order (2.8-3.7 ms either way).",
]


# The same quick `zero` run on the last commit before accounts (issue 9), kept to show what authentication costs.
BEFORE_ACCOUNTS = Path(__file__).resolve().parent / "results" / "before-accounts.json"
_PARTS = (("server", "server"), ("workers", "workers"), ("PostgreSQL", "postgres"), ("Redis", "redis"))


def _cpu_per_order(step: dict[str, Any]) -> dict[str, float]:
    rate = step["throughput_per_s"]
    return {k: 1000 * v / rate for k, v in step["cpu_cores"].items()} if rate else {}


def _auth_cost(res: dict[str, Any], before_path: Path = BEFORE_ACCOUNTS, started: str = "") -> list[str]:
    """CPU per confirmed order with AUTH=required (every call authenticated, every order counted against its
    account's limit) next to the same steps measured before accounts existed."""
    zero = res.get("zero")
    if not zero or not before_path.exists():
        return []
    before_data = json.loads(before_path.read_text())
    before = before_data["results"]["zero"]["throughput_by_workers"]
    rows = []
    for workers, steps in zero["throughput_by_workers"].items():
        for step in steps:
            match = next((b for b in before.get(workers, []) if b["concurrency"] == step["concurrency"]), None)
            if match is None:
                continue
            now, then = _cpu_per_order(step), _cpu_per_order(match)
            cells = [f"{then.get(k, 0):.2f} -> {now.get(k, 0):.2f}" for _, k in _PARTS]
            total = f"**{then.get('total', 0):.2f} -> {now.get('total', 0):.2f}**"
            rates = f"{match['throughput_per_s']:.0f} -> {step['throughput_per_s']:.0f}"
            rows.append(f"| {workers}, {step['concurrency']} | {rates} | " + " | ".join([*cells, total]) + " |")
    if not rows:
        return []
    commit = before_data["meta"]["git"]["commit"][:12]
    header = " | ".join(name for name, _ in _PARTS)
    before_day = str(before_data["meta"]["started"])[:10]
    other_day = bool(started) and before_day != started[:10]
    caveat = (
        f" **The before run is from {before_day}, another day than this run**: this virtual machine's speed "
        "differs between days by up to 3x (the do-nothing gRPC floor ran 739 orders/s on 2026-11-25 and 2,449/s "
        "on 2026-12-06), so these rows say nothing about what accounts cost. `python -m bench.auth_cost` measures "
        "that in CPU time: 2.4 µs to authenticate a known key, about 0.12 ms of the server's CPU and 0.03 ms of "
        "Redis's for the rate limit's script per order (README, \"What accounts cost\")."
        if other_day
        else ""
    )
    return [
        "## What authentication costs (CPU per confirmed order, ms)",
        "",
        f"Before: commit `{commit}` (no accounts), `{before_data['meta']['command']}`, started "
        f"{before_data['meta']['started']}; after: this run, every call carrying an API key (`AUTH=required`) "
        "and every order counted against its account's limit in Redis. Same closed-loop steps; `all` includes the "
        "load generator. Runs on a shared machine differ by about 25% from one to the next, so read a difference "
        "smaller than that as noise." + caveat,
        "",
        f"| workers, clients | confirmed/s | {header} | all |",
        "| ---: | ---: | " + " | ".join("---:" for _ in _PARTS) + " | ---: |",
        *rows,
        "",
    ]
