"""Opens the engine's connections when a worker boots and closes them when it shuts down.

They are opened on Dramatiq's event-loop thread (the AsyncIO middleware must come first), where every async
actor of the process runs, so one pool of each kind serves all of them.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from workers import runtime
from workers.config import Settings


class EngineLifecycle(dramatiq.Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None, "EngineLifecycle needs the AsyncIO middleware before it"
        pool_size = max(4, min(worker.worker_threads, 20))
        engine = loop_thread.run_coroutine(runtime.Engine.open(self.settings, broker, pool_size=pool_size))
        runtime.set_current(engine)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        # While the event loop still runs: the pools belong to it.
        loop_thread = get_event_loop_thread()
        engine = runtime.current()
        runtime.set_current(None)
        if loop_thread is not None:
            loop_thread.run_coroutine(engine.close())
