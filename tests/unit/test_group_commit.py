"""Group commit (`workers/group_commit.py`): who goes out together, and whose error is whose."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from workers.group_commit import GroupCommit


class Recorder:
    """A batch runner that records its batches; `hold` keeps a batch in flight until set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.started = asyncio.Event()  # a batch is in flight

    async def __call__(self, batch: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(batch))
        self.started.set()
        await self.hold.wait()
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def test_a_lone_request_goes_out_at_once_alone() -> None:
    run = Recorder()
    group = GroupCommit(run)
    assert await group.submit(2) == 20
    assert run.batches == [[2]]


async def test_requests_made_while_a_batch_is_in_flight_go_out_together_next() -> None:
    run = Recorder()
    run.hold.clear()
    group = GroupCommit(run)
    first = asyncio.create_task(group.submit(2))
    await run.started.wait()  # the first batch is in the store
    later = [asyncio.create_task(group.submit(n)) for n in (4, 6, 8)]
    await asyncio.sleep(0)
    assert run.batches == [[2]]  # nothing else goes out while the first batch is in flight
    run.hold.set()
    assert await first == 20
    assert await asyncio.gather(*later) == [40, 60, 80]
    assert run.batches == [[2], [4, 6, 8]]
    assert (group.batches, group.requests) == (2, 4)


async def test_a_requests_own_error_is_raised_to_it_alone() -> None:
    group = GroupCommit(Recorder())
    results = await asyncio.gather(*(group.submit(n) for n in (2, 3, 4)), return_exceptions=True)
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 3"


async def test_a_failed_batch_fails_its_requests_and_not_the_next_batch() -> None:
    calls = 0

    async def run(batch: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        return list(batch)

    group = GroupCommit(run)
    failed = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in failed)
    assert await group.submit(3) == 3


async def test_batches_hold_at_most_max_batch() -> None:
    run = Recorder()
    group = GroupCommit(run, max_batch=2)
    assert await asyncio.gather(*(group.submit(n) for n in (2, 4, 6, 8, 10))) == [20, 40, 60, 80, 100]
    assert run.batches == [[2, 4], [6, 8], [10]]


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    run = Recorder()
    run.hold.clear()
    group = GroupCommit(run)
    gone = asyncio.create_task(group.submit(2))
    kept = asyncio.create_task(group.submit(4))
    await run.started.wait()
    gone.cancel()
    run.hold.set()
    assert await kept == 40
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert run.batches == [[2, 4]]  # it ran for the cancelled caller all the same


async def test_a_runner_cancelled_with_its_loop_leaves_no_caller_waiting() -> None:
    run = Recorder()
    run.hold.clear()
    group = GroupCommit(run)
    waiting = [asyncio.create_task(group.submit(n)) for n in (2, 4)]
    await run.started.wait()
    runner = group._runner
    assert runner is not None
    runner.cancel()
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert group._runner is None


async def test_a_failed_batch_runs_again_one_by_one_when_alone_says_so() -> None:
    batches: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(batch))
        if 13 in batch:
            raise KeyError(13)  # one request's bad data fails any batch it is in
        return list(batch)

    group = GroupCommit(run, alone=lambda exc: isinstance(exc, KeyError))
    results = await asyncio.gather(*(group.submit(n) for n in (1, 13, 2)), return_exceptions=True)
    assert results[0] == 1 and results[2] == 2 and isinstance(results[1], KeyError)
    assert batches == [[1, 13, 2], [1], [13], [2]]


async def test_a_failed_batch_fails_every_request_when_alone_says_no() -> None:
    batches: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(batch))
        raise ConnectionError("store down")

    group = GroupCommit(run, alone=lambda exc: not isinstance(exc, ConnectionError))
    results = await asyncio.gather(*(group.submit(n) for n in (1, 2, 3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert batches == [[1, 2, 3]]  # not tried again one by one: the store is down for all of them
