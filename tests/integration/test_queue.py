"""The order queue sends through the broker's public enqueue: the broker's hooks see every message, async ones are
sent off the event loop, and the broker holds what Dramatiq's workers consume, immediate and delayed, on Redis and
on RabbitMQ alike."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import pika
import pytest
import redis as sync_redis
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from tests.rabbitmq import RabbitMQForTests
from tests.stack import Stores
from workers.broker import amqp_url, build_broker
from workers.config import Settings
from workers.queue import ACTOR_NAME, BATCH_ACTOR_NAME, QUEUE_NAME, BrokerQueue


class Recorder(dramatiq.Middleware):
    """What a Prometheus or tracing middleware would see of each enqueue."""

    def __init__(self) -> None:
        self.before: list[tuple[Any, ...]] = []
        self.after: list[tuple[Any, ...]] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int | None) -> None:
        self.before.append((message.args, delay, threading.current_thread().name))

    def after_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int | None) -> None:
        self.after.append((message.args, delay))


def _redis_messages(url: str, queue: str) -> list[Message[None]]:
    r = sync_redis.Redis.from_url(url)
    try:
        ids: list[bytes] = r.lrange(f"orderengine:{queue}", 0, -1)  # type: ignore[assignment]
        raw: list[bytes] = r.hmget(f"orderengine:{queue}.msgs", ids)  # type: ignore[assignment]
        return [Message.decode(m) for m in raw]
    finally:
        r.close()


def _rabbitmq_messages(url: str, queue: str) -> list[Message[None]]:
    """Takes the queue's messages (the virtual host is this test's own)."""
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        messages: list[Message[None]] = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append(Message.decode(body))


def _clean_redis(url: str) -> None:
    r = sync_redis.Redis.from_url(url)
    try:
        for key in r.scan_iter("orderengine:*"):  # only what this test wrote, never a whole database
            r.delete(key)
    finally:
        r.close()


@pytest.mark.parametrize("kind", ["redis", "amqp"])
async def test_every_enqueue_passes_the_brokers_hooks_and_lands_in_its_queues(
    stores: Stores, kind: str, request: pytest.FixtureRequest
) -> None:
    redis_url = stores.new_redis()
    if kind == "amqp":
        rabbitmq: RabbitMQForTests = request.getfixturevalue("rabbitmq")
        url = rabbitmq.new_broker_url()
        messages = _rabbitmq_messages
    else:
        url = redis_url
        messages = _redis_messages
    recorder = Recorder()
    broker = build_broker(Settings(redis_url=redis_url, broker_url=url), worker_middleware=[recorder])
    queue = BrokerQueue(broker)
    try:
        queue.enqueue("order-a")
        await queue.enqueue_async("order-b")
        queue.enqueue("order-c", delay_ms=60_000)
        await queue.enqueue_async("order-d", delay_ms=60_000)
        expected = [(("order-a",), None), (("order-b",), None), (("order-c",), 60_000), (("order-d",), 60_000)]
        assert recorder.after == expected
        assert [(args, delay) for args, delay, _ in recorder.before] == expected
        on_loop = threading.current_thread().name
        threads = [thread for _, _, thread in recorder.before]
        assert threads[0] == threads[2] == on_loop
        assert threads[1].startswith("enqueue") and threads[3].startswith("enqueue")  # not on the event loop

        now_msgs = messages(url, QUEUE_NAME)
        later_msgs = messages(url, f"{QUEUE_NAME}.DQ")
        assert [m.args for m in now_msgs] == [("order-a",), ("order-b",)]
        assert [m.args for m in later_msgs] == [("order-c",), ("order-d",)]
        assert {m.actor_name for m in now_msgs + later_msgs} == {ACTOR_NAME}
        assert abs(later_msgs[1].options["eta"] - later_msgs[0].options["eta"]) < 5_000

        # Several orders in one delayed message (workers/revisits.py), through the same hooks.
        await queue.enqueue_many_async(["order-e", "order-f"], 30_000)
        assert recorder.after[-1] == ((["order-e", "order-f"],), 30_000)
        shared = messages(url, f"{QUEUE_NAME}.DQ")[-1]
        assert (shared.actor_name, shared.args) == (BATCH_ACTOR_NAME, (["order-e", "order-f"],))
    finally:
        queue.close()
        _clean_redis(redis_url)
        broker.close()


def test_broker_url_picks_the_broker_and_refuses_an_unknown_scheme() -> None:
    redis_broker = build_broker(Settings(redis_url="redis://127.0.0.1:1/0"))
    rabbit_broker = build_broker(Settings(redis_url="redis://127.0.0.1:1/0", broker_url="amqp://u:p@127.0.0.1:1/v"))
    try:
        assert isinstance(redis_broker, RedisBroker)
        assert isinstance(rabbit_broker, RabbitmqBroker)
        assert rabbit_broker.confirm_delivery  # enqueue returns once RabbitMQ holds the message
        assert not isinstance(rabbit_broker.parameters, list) and rabbit_broker.parameters.virtual_host == "v"
    finally:
        redis_broker.close()
        rabbit_broker.close()
    with pytest.raises(ValueError, match="BROKER_URL: unknown scheme 'kafka'"):
        build_broker(Settings(redis_url="redis://127.0.0.1:1/0", broker_url="kafka://127.0.0.1:1"))


def test_amqp_url_keeps_what_the_operator_set() -> None:
    url = amqp_url("amqp://u:p@h:5672/v?heartbeat=60", heartbeat_s=5)
    assert "heartbeat=60" in url and "socket_timeout=2" in url and url.startswith("amqp://u:p@h:5672/v?")
