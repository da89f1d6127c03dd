"""A delayed message that comes due runs in the worker process that held it (`workers/delayed.py`): it is enqueued
once, runs from the delay queue and is acked there, on Redis and on RabbitMQ; a process far behind passes it on
through the broker, as Dramatiq does. These tests also fail if the Dramatiq internals the module leans on change.

That a due message held in a process that dies is delivered again is shown with the whole system by
`tests/fault/test_worker_sigkill.py` (realistic latency: most messages in flight at the kill are such messages).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pika
import pytest
import redis as sync_redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from tests.rabbitmq import RabbitMQForTests
from tests.stack import Stores
from workers.delayed import DueHereConsumer, DueHereWorker

QUEUE = "probe"
DELAY_MS = 50


class Seen(dramatiq.Middleware):
    """Every enqueue, and the queue each processed message ran from."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[str, int | None]] = []
        self.ran_from: list[str] = []
        self.done = threading.Event()

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        self.enqueued.append((message.queue_name, delay))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self.ran_from.append(message.queue_name)
        self.done.set()


def _probe() -> None:
    pass


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest, stores: Stores) -> Iterator[tuple[dramatiq.Broker, Seen, str]]:
    seen = Seen()
    if request.param == "amqp":
        rabbitmq: RabbitMQForTests = request.getfixturevalue("rabbitmq")
        url = rabbitmq.new_broker_url()  # a virtual host of this test's own
        made: dramatiq.Broker = RabbitmqBroker(url=url, middleware=[seen], confirm_delivery=True)
    else:
        url = stores.new_redis()
        namespace = f"delayed-here-{uuid.uuid4().hex[:8]}"  # only this test's keys, never a whole database
        made = RedisBroker(url=url, namespace=namespace, middleware=[seen])  # type: ignore[no-untyped-call]
    dramatiq.actor(broker=made, actor_name="probe_actor", queue_name=QUEUE)(_probe)
    try:
        yield made, seen, url
    finally:
        if isinstance(made, RedisBroker):
            r = sync_redis.Redis.from_url(url)
            for key in r.scan_iter(f"{made.namespace}:*"):
                r.delete(key)
            r.close()
        made.close()


def _run_one_delayed(broker: dramatiq.Broker, seen: Seen, *, room: int) -> DueHereConsumer:
    worker = DueHereWorker(broker, worker_threads=1, worker_timeout=25, room=room, poll_ms={f"{QUEUE}.DQ": 40})
    worker.start()
    try:
        broker.get_actor("probe_actor").send_with_options(delay=DELAY_MS)
        assert seen.done.wait(30), "the delayed message never ran"
        worker.join()  # until its ack is sent
    finally:
        worker.stop(timeout=5_000)
    consumer = worker.consumers[f"{QUEUE}.DQ"]
    assert isinstance(consumer, DueHereConsumer)
    assert (consumer.worker_timeout, worker.consumers[QUEUE].worker_timeout) == (40, 25)  # its own poll
    return consumer


def _left_in_broker(broker: dramatiq.Broker, url: str) -> dict[str, int]:
    """Messages each queue still holds, acked or not (an unacked one would be delivered again)."""
    names = [QUEUE, f"{QUEUE}.DQ"]
    if isinstance(broker, RedisBroker):
        r = sync_redis.Redis.from_url(url)
        try:
            return {name: int(r.hlen(f"{broker.namespace}:{name}.msgs")) for name in names}
        finally:
            r.close()
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        return {name: channel.queue_declare(name, passive=True).method.message_count for name in names}


def test_a_due_message_runs_where_it_was_held_and_is_acked_there(broker: tuple[dramatiq.Broker, Seen, str]) -> None:
    made, seen, url = broker
    consumer = _run_one_delayed(made, seen, room=256)
    assert (consumer.ran_here, consumer.passed_on) == (1, 0)
    assert seen.enqueued == [(f"{QUEUE}.DQ", DELAY_MS)]  # the sender's enqueue only: no second trip
    assert seen.ran_from == [f"{QUEUE}.DQ"]
    assert _left_in_broker(made, url) == {QUEUE: 0, f"{QUEUE}.DQ": 0}


def test_a_process_far_behind_passes_a_due_message_on_through_the_broker(
    broker: tuple[dramatiq.Broker, Seen, str],
) -> None:
    made, seen, url = broker
    consumer = _run_one_delayed(made, seen, room=0)
    assert (consumer.ran_here, consumer.passed_on) == (0, 1)
    assert seen.enqueued == [(f"{QUEUE}.DQ", DELAY_MS), (QUEUE, None)]
    assert seen.ran_from == [QUEUE]
    assert _left_in_broker(made, url) == {QUEUE: 0, f"{QUEUE}.DQ": 0}
