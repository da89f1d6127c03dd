"""The order story as Prometheus metrics, and the `/metrics` endpoint each process serves.

One endpoint per process rather than prometheus_client's multiprocess mode: our processes are not forks of one
parent that could share a directory of mmapped files (the supervisor starts each with `python -m server.cli`),
multiprocess mode cannot serve live gauges by callback (each pool's price, the hub's backlog) and leaves files of
dead processes behind. Each process serves its own registry on its own port; Prometheus scrapes them all and
`sum()` adds the processes up, so nothing is counted twice or lost when one restarts (counters reset per target,
which `rate()` handles).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from workers.domain import OrderStatus
from workers.models import OrderEvent

log = logging.getLogger(__name__)

# pending -> terminal: a zero-latency market settles in tens of milliseconds, a realistic one in seconds.
ORDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120)

ORDER_EVENTS = Counter("orderengine_order_events", "Order events written, by status.", ["status"])
ORDER_SECONDS = Histogram(
    "orderengine_order_seconds",
    "Seconds from an order's pending event to its terminal one, by final status and order type.",
    ["status", "order_type"],
    buckets=ORDER_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "orderengine_order_stage_seconds",
    "Seconds an order spent in a status before its next event (seen by the process writing that event).",
    ["stage"],
    buckets=ORDER_BUCKETS,
)
RETRIES = Counter("orderengine_order_retries", "Order attempts that failed and were retried, by reason.", ["reason"])
FAILURES = Counter("orderengine_order_failures", "Orders that failed for good, by reason.", ["reason"])
SLIPPAGE_REFUSALS = Counter("orderengine_slippage_refusals", "Swaps refused at settlement for slippage.")
ROUTE_SPLITS = Counter("orderengine_route_splits", "Routes chosen with more than one leg (split or multi-hop).")
POOL_PRICE = Gauge("orderengine_pool_price", "Each pool's spot price, token_y per token_x.", ["pool", "venue", "pair"])

IN_FLIGHT = Gauge(
    "orderengine_orders_in_flight",
    "Orders in each non-final status, as the store has them (every worker reports the same count: use max()).",
    ["stage"],
)

SLIPPAGE_CODE = "SLIPPAGE_EXCEEDED"
# Orders whose previous event this process saw; bounded, since another process may write an order's last event.
_REMEMBERED = 50_000


class OrderMetrics:
    """An EventSink observer (`engine.events.observe(OrderMetrics())`): counts every committed event."""

    def __init__(self) -> None:
        self._last: OrderedDict[str, tuple[OrderStatus, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, event: OrderEvent) -> None:
        status = event.status
        ORDER_EVENTS.labels(status.value).inc()
        error = event.details.error
        if error is not None:
            reason = str(error.code)
            if status.is_final:
                FAILURES.labels(reason).inc()
            else:
                RETRIES.labels(reason).inc()
            if reason.endswith(SLIPPAGE_CODE):
                SLIPPAGE_REFUSALS.inc()
        route = event.details.route
        if route is not None and len(route.get("legs", ())) > 1:
            ROUTE_SPLITS.inc()
        if status.is_final and event.placed_at is not None:
            order_type = event.order_type.value if event.order_type is not None else "unknown"
            ORDER_SECONDS.labels(status.value, order_type).observe((event.time - event.placed_at).total_seconds())
        self._stage(event)

    def _stage(self, event: OrderEvent) -> None:
        with self._lock:
            previous = self._last.pop(event.order_id, None)
            if previous is None and event.seq == 2 and event.placed_at is not None:
                previous = (OrderStatus.PENDING, event.placed_at)
            if previous is not None:
                STAGE_SECONDS.labels(previous[0].value).observe(max(0.0, (event.time - previous[1]).total_seconds()))
            if not event.status.is_final:
                self._last[event.order_id] = (event.status, event.time)
                while len(self._last) > _REMEMBERED:
                    self._last.popitem(last=False)


def set_pool_prices(pools: Any) -> None:
    """Sets `orderengine_pool_price` from `{pool_id: Pool}` as loaded from the store."""
    for pool in pools.values():
        pair = f"{pool.token_x.symbol}/{pool.token_y.symbol}"
        POOL_PRICE.labels(pool.id, pool.dex, pair).set(float(pool.spot_price(pool.token_x)))


def set_in_flight(counts: dict[str, int]) -> None:
    for stage, n in counts.items():
        IN_FLIGHT.labels(stage).set(n)


def serve_metrics(port: int, kind: str, host: str = "0.0.0.0") -> None:
    """Serves this process's `/metrics` on `port` from a daemon thread; 0 serves nothing."""
    if port <= 0:
        return
    start_http_server(port, addr=host)
    log.info("%s metrics on http://localhost:%d/metrics", kind, port)
