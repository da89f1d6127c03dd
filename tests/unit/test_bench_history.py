"""The benchmark's run history (`bench/history.py`): which figures a run leaves, and what the report says of them."""

from __future__ import annotations

from typing import Any

from bench.history import headline, section


def _run(engine: str, zero: float, realistic: float, probe: float) -> dict[str, Any]:
    return {
        "started": "2026-12-07T13:00:00+00:00",
        "commit": "abcdef123456",
        "engine": engine,
        "engine_dirty": False,
        "speed_probe_ms": {"before": probe, "after": probe},
        "figures": {"zero_peak": zero, "realistic_peak": realistic, "floor_per_s": 2000.0},
    }


def test_headline_takes_the_targets_figures_of_a_run() -> None:
    results = {
        "zero": {"best_throughput_per_s": 300.0},
        "realistic": {"best_throughput_per_s": 180.0},
        "fanout": [
            {"via": "grpc", "streams": 10_000, "orders": 10_000, "server_processes": 1, "delivery_ms": {"p99": 30.0}},
            {"via": "grpc", "streams": 10_000, "orders": 250, "server_processes": 1, "delivery_ms": {"p99": 900.0}},
            {"via": "grpc", "streams": 50_000, "orders": 1_000, "server_processes": 4, "delivery_ms": {"p99": 1.0}},
            {"via": "bridge", "streams": 10_000, "orders": 250, "server_processes": 1, "delivery_ms": {"p99": 2.0}},
        ],
        "burst": {"grpc": {"answer_ms": {"p99": 400.0}}},
        "floor": {"orders_per_s": 2100.0},
    }
    assert headline(results) == {
        "zero_peak": 300.0,
        "realistic_peak": 180.0,
        "fanout_10000x1_p99": 30.0,
        "fanout_10000x40_p99": 900.0,
        "burst_grpc_p99": 400.0,
        "floor_per_s": 2100.0,
    }


def test_the_section_compares_only_runs_of_the_same_engine_code() -> None:
    runs = [_run("old", 100.0, 50.0, 60.0), _run("new", 300.0, 180.0, 40.0), _run("new", 270.0, 200.0, 45.0)]
    text = "\n".join(section(runs, "new"))
    assert "1 recorded runs of earlier engine code are left out" in text
    assert text.count("| 2026-12-07 13:00 |") == 2
    assert "`zero` peak 270.0-300.0/s (1.11x)" in text
    assert "`realistic` peak 180.0-200.0/s (1.11x)" in text
    assert "100.0" not in text  # the other engine's run


def test_the_section_says_when_a_run_has_no_other_to_compare_with() -> None:
    assert "run `make bench` again" in "\n".join(section([_run("new", 300.0, 180.0, 40.0)], "new"))
    assert "No full run of this engine code is recorded yet." in section([], "new")
