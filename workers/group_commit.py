"""Group commit: requests made while a batch is in flight go out together as the next batch.

A worker process runs its messages as coroutines on one event loop, so several orders reach the same store call
at about the same time. `GroupCommit.submit` hands its request to one runner per loop: an idle runner starts at
once with what it has (a lone request waits for nothing), and whatever arrives while that batch is in the store
goes out as the next one. Under load a batch holds about as many requests as there are messages in flight; at
rest, one. Each caller gets its own request's result or exception.

Parameters:
run(Callable): runs a batch; returns one result per request, in order, where a result may be an exception that
  only its request raises. An exception raised by `run` itself fails the whole batch.
max_batch(int): at most this many requests per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64


class GroupCommit(Generic[T, R]):
    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._run = run
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
                try:
                    results: Sequence[R | BaseException] = await self._run([request for request, _ in batch])
                except Exception as exc:
                    results = [exc] * len(batch)
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
