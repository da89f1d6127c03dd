"""The runs of `make bench`, kept: each full run adds its headline figures to `bench/results/history.jsonl`.

BENCHMARKS.md is one run. Whether `make bench` reproduces it is a question about several: the report's
"Reproducibility" section lists every recorded run of the same engine code (the same `server/`, `workers/`,
`client/`, `protos/` and lock file: `engine_fingerprint`), with the machine's speed before and after each
(`bench/speed.py`) and the gRPC floor, and says how far each figure spread between them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "bench" / "results" / "history.jsonl"
ENGINE_PATHS = ("server", "workers", "client", "protos", "pyproject.toml", "uv.lock")

# The headline figures, in the order the report shows them: (key, column title, unit, higher is better).
FIGURES: tuple[tuple[str, str, str, bool], ...] = (
    ("zero_peak", "`zero` peak", "/s", True),
    ("realistic_peak", "`realistic` peak", "/s", True),
    ("fanout_10000x1_p99", "10,000 watchers, 1 per order: p99", " ms", False),
    ("fanout_10000x40_p99", "10,000 watchers, 40 per order: p99", " ms", False),
    ("burst_grpc_p99", "burst of 200, gRPC: p99", " ms", False),
    ("burst_bridge_p99", "burst of 200, bridge: p99", " ms", False),
    ("cost_ms", "CPU per order (all parts)", " ms", False),
)


def engine_fingerprint(commit: str = "HEAD") -> str:
    """A short hash of the engine's trees at `commit`: equal for two commits that differ only in docs, bench or
    tests."""
    trees = []
    for path in ENGINE_PATHS:
        out = subprocess.run(
            ["git", "rev-parse", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        trees.append(out.stdout.strip())
    return hashlib.sha256("\n".join(trees).encode()).hexdigest()[:12]


def headline(results: dict[str, Any]) -> dict[str, float]:
    """The figures of one run that the targets are about (those it measured)."""
    out: dict[str, float] = {}
    for key in ("zero", "realistic"):
        if results.get(key, {}).get("best_throughput_per_s") is not None:
            out[f"{key}_peak"] = results[key]["best_throughput_per_s"]
    for f in results.get("fanout", []):
        if f.get("via") == "grpc" and f.get("server_processes", 1) == 1 and f.get("streams") == 10_000:
            per_order = f["streams"] // f["orders"]
            p99 = (f.get("delivery_ms") or {}).get("p99")
            if p99 is not None and per_order in (1, 40):
                out[f"fanout_10000x{per_order}_p99"] = p99
    for key in ("grpc", "bridge"):
        answer = (results.get("burst") or {}).get(key, {}).get("answer_ms", {})
        if answer.get("p99") is not None:
            out[f"burst_{key}_p99"] = answer["p99"]
    cost = results.get("cost")
    if cost and cost.get("accept") and cost.get("open") and cost.get("live"):
        out["cost_ms"] = round(sum(cost[p]["cpu_ms"]["all"] for p in ("accept", "open", "live")), 2)
    floor = results.get("floor")
    if floor and floor.get("orders_per_s"):
        out["floor_per_s"] = floor["orders_per_s"]
    return out


def entry(meta: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    return {
        "started": meta["started"],
        "commit": meta["git"]["commit"][:12],
        "engine": meta.get("engine") or engine_fingerprint(meta["git"]["commit"]),
        "engine_dirty": meta["git"].get("engine_dirty", False),
        "elapsed_s": meta.get("elapsed_s"),
        "speed_probe_ms": meta.get("speed_probe_ms"),
        "machine_busy_cores_avg": meta.get("machine_busy_cores_avg"),
        "figures": headline(results),
    }


def load(path: Path = HISTORY) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(record: dict[str, Any], path: Path = HISTORY) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def _probe(p: dict[str, float] | None) -> str:
    if not p:
        return "-"
    return f"{p.get('before', '-')} / {p.get('after', '-')}"


def section(history: list[dict[str, Any]], engine: str) -> list[str]:
    """The report's "Reproducibility" section: the recorded runs of `engine`, and how far each figure spread."""
    same = [h for h in history if h["engine"] == engine and not h.get("engine_dirty")]
    older = len(history) - len(same)
    out = [
        "## Reproducibility: every recorded run of this engine code",
        "",
        "Each full `make bench` adds its headline figures to `bench/results/history.jsonl`; these are the runs of "
        f"the engine code this report measured (engine `{engine}`: the trees of "
        f"{', '.join(f'`{p}`' for p in ENGINE_PATHS)}), oldest first"
        + (f"; {older} recorded runs of earlier engine code are left out" if older else "")
        + ". The speed probe (`bench/speed.py`: a fixed pure-Python workload, best of 7, in ms of CPU, lower is "
        "faster) was taken just before and just after each run on the idle machine; the gRPC floor is the same "
        "load generator against a servicer that does nothing. Both say how fast the machine was: figures of runs "
        "with different probes differ because of the machine, by about as much.",
        "",
    ]
    if not same:
        return [*out, "No full run of this engine code is recorded yet.", ""]
    cols = [(key, title, unit, up) for key, title, unit, up in FIGURES if any(key in h["figures"] for h in same)]
    out.append(
        "| started | commit | speed probe before / after | gRPC floor | " + " | ".join(t for _, t, _, _ in cols) + " |"
    )
    out.append("| --- | --- | --- | ---: | " + " | ".join("---:" for _ in cols) + " |")
    for h in same:
        f = h["figures"]
        cells = [f"{f[k]:,.1f}{u}" if k in f else "-" for k, _, u, _ in cols]
        floor = f"{f['floor_per_s']:,.0f}/s" if "floor_per_s" in f else "-"
        out.append(
            f"| {h['started'][:16].replace('T', ' ')} | `{h['commit'][:9]}` | {_probe(h.get('speed_probe_ms'))} | "
            f"{floor} | " + " | ".join(cells) + " |"
        )
    out.append("")
    if len(same) < 2:
        out += ["One run of this engine code so far: run `make bench` again to see how far its figures move.", ""]
        return out
    spreads = []
    for key, title, unit, _ in cols:
        values = [h["figures"][key] for h in same if key in h["figures"]]
        if len(values) >= 2 and min(values) > 0:
            lo, hi = min(values), max(values)
            spreads.append(f"{title} {lo:,.1f}-{hi:,.1f}{unit} ({hi / lo:.2f}x)")
    out += [
        f"Spread over these {len(same)} runs (lowest-highest, and highest / lowest): " + "; ".join(spreads) + ".",
        "",
    ]
    return out
