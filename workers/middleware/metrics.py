"""Prometheus metrics of a worker process: its messages (as Dramatiq's own `Prometheus` middleware names them),
the order story (an event observer), the pools' prices, and the `/metrics` endpoint.

Dramatiq's middleware is not used as is: it keeps its samples in a multiprocess directory shared by every
Dramatiq process on the host (/tmp/dramatiq-prometheus unless told otherwise) and serves them from a process that
only the `dramatiq` command forks, which `orderengine worker` is not. This one keeps the same metric names in the
process's own registry, served on WORKER_METRICS_PORT (see `workers/telemetry/metrics.py` for why).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from prometheus_client import Counter, Gauge, Histogram

from workers import runtime
from workers.middleware.periodic import Periodic
from workers.telemetry.metrics import OrderMetrics, serve_metrics, set_in_flight, set_pool_prices

LABELS = ["queue_name", "actor_name"]
MESSAGES = Counter("dramatiq_messages", "Messages processed.", LABELS)
ERRORS = Counter("dramatiq_message_errors", "Messages whose actor raised.", LABELS)
RETRIES = Counter("dramatiq_message_retries", "Messages enqueued again by a retry.", LABELS)
REJECTS = Counter("dramatiq_message_rejects", "Messages dead-lettered.", LABELS)
IN_PROGRESS = Gauge("dramatiq_messages_inprogress", "Messages being processed now.", LABELS)
DURATION = Histogram(
    "dramatiq_message_duration_seconds",
    "Time spent processing a message.",
    LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)

# How often the store's gauges are refreshed.
STORE_GAUGES_INTERVAL_S = 1.0


class WorkerMetrics(dramatiq.Middleware):
    """Parameters:
    port(int): where this process serves `/metrics`; 0 serves nothing (the samples are still kept).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        runtime.current().events.observe(OrderMetrics())
        serve_metrics(self.port, "worker")

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if "retries" in message.options:
            RETRIES.labels(message.queue_name, message.actor_name).inc()

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        REJECTS.labels(message.queue_name, message.actor_name).inc()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        IN_PROGRESS.labels(message.queue_name, message.actor_name).inc()
        with self._lock:
            self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        labels = (message.queue_name, message.actor_name)
        with self._lock:
            started = self._started.pop(message.message_id, None)
        if started is None:  # skipped by a middleware before this one saw it: not ours to count
            return
        DURATION.labels(*labels).observe(time.perf_counter() - started)
        IN_PROGRESS.labels(*labels).dec()
        MESSAGES.labels(*labels).inc()
        if exception is not None:
            ERRORS.labels(*labels).inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


class StoreGauges(Periodic):
    """Keeps the gauges of what the store holds current: each pool's price (settlements and drift move the pools
    in whichever process) and the orders in flight by stage."""

    async def tick(self, engine: runtime.Engine) -> None:
        set_pool_prices(await engine.store.load_pools())
        set_in_flight(await engine.store.orders_in_flight())
