"""Turns an order's failed attempt into its next attempt, or into its one `failed` event.

Parameters:
  max_attempts(int): attempts in all (SPEC: 3).
  min_backoff_ms(int), max_backoff_ms(int): the wait before attempt n+1 is min_backoff * 2**(n-1), capped.

A transient failure (a venue did not answer, a transaction expired) before the last attempt starts the next one
at `routing`, its event carrying the attempt number and the error; anything else fails the order. This is the
only place a `failed` event is made. The actor declares `throws=OrderFailure`, so Dramatiq's own Retries leaves
these alone and keeps its delivery retries for infrastructure errors.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.broker import MessageProxy

from workers import runtime
from workers.domain import OrderError, OrderFailure

log = logging.getLogger(__name__)


def backoff_ms(failed_attempt: int, min_backoff_ms: int, max_backoff_ms: int) -> int:
    return int(min(min_backoff_ms * 2 ** (failed_attempt - 1), max_backoff_ms))


class OrderAttempts(dramatiq.Middleware):
    def __init__(self, *, max_attempts: int, min_backoff_ms: int, max_backoff_ms: int) -> None:
        self.max_attempts = max_attempts
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: Any = None,
    ) -> None:
        if not isinstance(exception, OrderFailure):
            return
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        order_id = message.args[0]
        loop_thread.run_coroutine(self.settle_attempt(runtime.current(), order_id, exception))

    async def settle_attempt(self, engine: runtime.Engine, order_id: str, failure: OrderFailure) -> None:
        error = failure.to_error()
        if failure.retryable and failure.attempt < self.max_attempts:
            if await engine.store.start_retry(order_id, failure.attempt, error) is not None:
                delay = backoff_ms(failure.attempt, self.min_backoff_ms, self.max_backoff_ms)
                log.info(
                    "order %s: attempt %d failed (%s), next in %d ms",
                    order_id,
                    failure.attempt,
                    error.code,
                    delay,
                    extra={"order_id": order_id, "attempt": failure.attempt, "error_code": error.code},
                )
                await engine.queue.enqueue_async(order_id, delay)
            return
        if failure.retryable:
            error = OrderError(
                code=error.code,
                message=f"{error.message}; gave up after {failure.attempt} attempts",
                retryable=False,
            )
        await engine.store.fail(order_id, error, attempt=failure.attempt)
