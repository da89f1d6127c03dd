"""A base for middleware that does something every so often on the worker's event loop, from boot to shutdown.

Parameters:
  interval_seconds(float): the wait between two ticks (subclasses may align it with `next_delay`).

Subclasses implement `tick(engine)`. A tick that raises is logged and the next one runs as planned: a store
outage must not end the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread

from workers import runtime

log = logging.getLogger(__name__)


class Periodic(dramatiq.Middleware):
    def __init__(self, *, interval_seconds: float) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.interval_seconds = interval_seconds
        self._task: Any = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None, f"{type(self).__name__} needs the AsyncIO middleware before it"
        self._task = asyncio.run_coroutine_threadsafe(self._run(), loop_thread.loop)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self._task is not None:
            self._task.cancel()

    def next_delay(self) -> float:
        return self.interval_seconds

    async def tick(self, engine: runtime.Engine) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            try:
                await self.tick(runtime.current())
            except Exception as exc:
                log.warning("%s tick failed: %s", type(self).__name__, exc)
