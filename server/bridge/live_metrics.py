"""GET /api/metrics: the sum of the system's `/metrics` endpoints (METRICS_TARGETS), as JSON for the page's live
charts. Counters and histogram buckets are summed over processes; gauges that every worker reports alike (orders in
flight, pool prices) take the largest. The page turns successive answers into rates and percentiles."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SCRAPE_TIMEOUT_S = 2.0


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        return str(response.read().decode())


def summarize(texts: list[str]) -> dict[str, Any]:
    events: dict[str, float] = defaultdict(float)
    failures: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    in_flight: dict[str, float] = {}
    pools: dict[str, dict[str, Any]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "orderengine_order_events_total":
                    events[s.labels["status"]] += s.value
                elif s.name == "orderengine_order_failures_total":
                    failures[s.labels["reason"]] += s.value
                elif s.name == "orderengine_order_seconds_bucket":
                    buckets[float(s.labels["le"])] += s.value
                elif s.name == "orderengine_orders_in_flight":
                    in_flight[s.labels["stage"]] = max(in_flight.get(s.labels["stage"], 0.0), s.value)
                elif s.name == "orderengine_pool_price":
                    pools[s.labels["pool"]] = {"pair": s.labels["pair"], "venue": s.labels["venue"], "price": s.value}
    return {
        "events": dict(events),
        "failures": dict(failures),
        # JSON has no infinity: the +Inf bucket is the count.
        "latency_buckets": sorted((le, n) for le, n in buckets.items() if le != float("inf")),
        "latency_count": buckets.get(float("inf"), 0.0),
        "in_flight": in_flight,
        "pools": pools,
    }


async def live_metrics(request: Request) -> Response:
    targets: list[str] = request.app.state.metrics_targets
    answers = await asyncio.gather(*(asyncio.to_thread(_fetch, url) for url in targets), return_exceptions=True)
    texts = [a for a in answers if isinstance(a, str)]
    unreachable = [url for url, a in zip(targets, answers, strict=True) if not isinstance(a, str)]
    body = {"time": time.time(), "targets": len(targets), "unreachable": unreachable, **summarize(texts)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
