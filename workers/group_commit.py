"""Group commit: requests made while a batch is in flight go out together as the next batch.

A worker process runs its messages as coroutines on one event loop, so several orders reach the same store call
at about the same time. `GroupCommit.submit` hands its request to one runner per loop: an idle runner starts at
once with what it has (a lone request waits for nothing), and whatever arrives while that batch is in the store
goes out as the next one. Under load a batch holds about as many requests as there are messages in flight; at
rest, one. Each caller gets its own request's result or exception.

Parameters:
run(Callable): runs a batch; returns one result per request, in order, where a result may be an exception that
  only its request raises. An exception raised by `run` itself concerns the whole batch.
alone(Callable | None): when `run` raises and this says yes of the exception, each request of the batch is run
  again by itself, so that whatever failed the batch (one request's bad data) fails only its own request; when it
  says no (the store is down), every request of the batch gets the exception at once.
max_batch(int): at most this many requests per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64

log = logging.getLogger(__name__)


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        alone: Callable[[Exception], bool] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._run = run
        self._alone = alone
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0  # batches run and requests in them, for tests and benchmarks
        self.requests = 0

    async def submit(self, request: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                self.batches += 1
                self.requests += len(batch)
                results = await self._results([request for request, _ in batch])
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller was cancelled: the batch ran for it all the same
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                batch = []
        except asyncio.CancelledError:  # the loop is shutting down: no caller is left waiting forever
            for _, future in batch + self._waiting:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._runner = None

    async def _results(self, batch: list[T]) -> Sequence[R | BaseException]:
        try:
            return await self._run(batch)
        except Exception as exc:
            if len(batch) == 1 or self._alone is None or not self._alone(exc):
                return [exc] * len(batch)
            log.warning("a batch of %d failed (%s); running each by itself", len(batch), exc)
        each: list[R | BaseException] = []
        for request in batch:
            try:
                each += await self._run([request])
            except Exception as exc:
                each.append(exc)
        return each
