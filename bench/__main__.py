"""`python -m bench` (`make bench`): starts the system, measures it, writes bench/results/latest.json and
BENCHMARKS.md. `--quick` runs a 1-2 minute subset; `--scenarios` picks some of them."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import history
from bench.launcher import ROOT, Stores, System, make_tmp, remove_tmp
from bench.plan import DEFAULT, QUICK, SCENARIOS
from bench.procstat import machine_busy_seconds
from bench.report import render
from bench.runner import run, say
from bench.speed import speed_probe_ms

RESULTS = ROOT / "bench" / "results" / "latest.json"
REPORT = ROOT / "BENCHMARKS.md"


def machine() -> dict[str, Any]:
    model = ""
    mem_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": list(os.getloadavg()),
    }


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "engine_dirty": bool(git("status", "--porcelain", "--", "server", "workers", "client", "protos")),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 1-2 minute subset")
    parser.add_argument(
        "--scenarios",
        default=None,
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all; --quick: all but threads, profile)",
    )
    parser.add_argument("--workers", default=None, help="worker process counts to compare, e.g. 1,2,4")
    parser.add_argument("--no-write", action="store_true", help="print the JSON instead of writing the results")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--report", type=Path, default=REPORT, help="the Markdown report to regenerate")
    parser.add_argument("--render-only", action="store_true", help="regenerate the report from --output and exit")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only the measured scenarios' results in --output (the report says when each was measured)",
    )
    args = parser.parse_args(argv)

    if args.render_only:
        data = json.loads(args.output.read_text())
        args.report.write_text(render(data, history.load()))
        say(f"wrote {args.report}")
        return 0

    plan = QUICK if args.quick else DEFAULT
    if args.workers:
        plan = replace(plan, workers=tuple(int(w) for w in args.workers.split(",")))
    if args.scenarios:
        scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
        unknown = scenarios - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    else:
        scenarios = set(SCENARIOS) - ({"threads", "profile"} if args.quick else set())

    # SIGTERM unwinds like Ctrl-C, so the finally below stops every child and store.
    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else list(argv)),
        "quick": args.quick,
        "scenarios": sorted(scenarios),
        "machine": machine(),
        "git": git_commit(),
        "stores": "embedded" if not (os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL")) else "given",
        "engine": history.engine_fingerprint(),
    }
    full = not args.quick and scenarios == set(SCENARIOS)
    speed_before = speed_probe_ms()
    t0, busy0 = time.monotonic(), machine_busy_seconds()
    tmp = make_tmp()
    live: list[System] = []
    stores: Stores | None = None
    try:
        say(f"bench: stores starting (data in {tmp})")
        stores = Stores.start_for_bench(tmp)
        results = asyncio.run(run(plan, scenarios, stores, live, tmp))
    except KeyboardInterrupt:
        say("bench: interrupted; stopping everything")
        return 130
    finally:
        for system in live:
            system.stop()
        if stores is not None:
            stores.stop()
        remove_tmp(tmp)
    elapsed = time.monotonic() - t0
    meta["elapsed_s"] = round(elapsed, 1)
    meta["machine_busy_cores_avg"] = round((machine_busy_seconds() - busy0) / elapsed, 2)
    meta["speed_probe_ms"] = {"before": speed_before, "after": speed_probe_ms()}
    meta["machine"]["loadavg_after"] = list(os.getloadavg())
    data = {"meta": meta, "results": results}
    if args.merge and args.output.exists():
        data = json.loads(args.output.read_text())
        data["results"].update({k: v for k, v in results.items() if k != "elapsed_s"})
        data["meta"].setdefault("merged", []).append({k: meta[k] for k in ("started", "command", "git", "machine")})
        data["meta"]["merged"][-1]["machine_busy_cores_avg"] = meta["machine_busy_cores_avg"]
    if args.no_write:
        print(json.dumps(data, indent=2))
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.output.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(data, indent=2) + "\n")
    tmp_out.replace(args.output)
    if full and not args.merge:  # the runs the report's reproducibility section compares
        history.append(history.entry(meta, results))
    args.report.write_text(render(data, history.load()))
    say(f"bench: done in {elapsed:.0f} s; wrote {args.output.resolve().relative_to(ROOT)} and {args.report.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
