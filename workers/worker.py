"""A worker process: the broker with the order middleware, the actor, and Dramatiq's thread pool."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

import dramatiq
import uvloop

from workers.broker import build_broker
from workers.config import Settings
from workers.middleware import EngineLifecycle, OrderAttempts, Reconciler
from workers.middleware.market_drift import MarketDrift
from workers.middleware.market_launches import MarketLaunches
from workers.middleware.metrics import STORE_GAUGES_INTERVAL_S, StoreGauges, WorkerMetrics
from workers.readiness import notify_ready
from workers.telemetry.otel import setup_tracing

log = logging.getLogger(__name__)

# How long an idle consumer waits between polls of Redis: the latency an order sees when the system is quiet.
IDLE_POLL_MS = 25


def setup_broker(settings: Settings) -> dramatiq.Broker:
    broker = build_broker(
        settings,
        worker_middleware=[
            EngineLifecycle(settings),
            # Metrics cost CPU per message: kept only by a worker that serves them (`make bench` measures it).
            *(
                [WorkerMetrics(settings.worker_metrics_port), StoreGauges(interval_seconds=STORE_GAUGES_INTERVAL_S)]
                if settings.worker_metrics_port
                else []
            ),
            OrderAttempts(
                max_attempts=settings.retry_max_attempts,
                min_backoff_ms=settings.retry_min_backoff_ms,
                max_backoff_ms=settings.retry_max_backoff_ms,
            ),
            Reconciler(
                idle_seconds=settings.reconcile_idle_seconds,
                interval_seconds=settings.reconcile_interval_seconds,
            ),
            *(
                [MarketDrift(interval_seconds=settings.market_drift_seconds, seed=settings.market_seed)]
                if settings.market_latency == "realistic" and settings.market_drift_seconds > 0
                else []
            ),
            *(
                [MarketLaunches(interval_seconds=settings.market_launch_seconds, seed=settings.market_seed)]
                if settings.market_latency == "realistic" and settings.market_launch_seconds > 0
                else []
            ),
        ],
    )
    dramatiq.set_broker(broker)
    # Declaring the actor binds it to the current broker, so it is imported only once that broker is set.
    import workers.actors  # noqa: F401

    return broker


def run_worker(settings: Settings, *, threads: int | None = None) -> int:
    """Runs until SIGTERM or SIGINT, then lets in-flight messages finish (unfinished ones are requeued)."""
    # Dramatiq's event-loop thread makes its loop with the current policy: uvloop's costs less CPU per event.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    setup_tracing("worker")
    broker = setup_broker(settings)
    worker = dramatiq.Worker(broker, worker_threads=threads or settings.worker_threads, worker_timeout=IDLE_POLL_MS)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    log.info("worker ready: %d threads on queue orders", worker.worker_threads)
    notify_ready("worker")
    stop.wait()
    log.info("worker stopping: draining in-flight messages")
    worker.stop(timeout=10_000)
    broker.close()
    return 0
