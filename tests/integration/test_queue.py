"""The order queue sends through the broker's public enqueue: the broker's hooks see every message, async ones are
sent off the event loop, and Redis holds what Dramatiq's workers consume, immediate and delayed."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import redis as sync_redis
from dramatiq import Message

from tests.stack import Stores
from workers.broker import build_broker
from workers.config import Settings
from workers.queue import ACTOR_NAME, QUEUE_NAME, BrokerQueue


class Recorder(dramatiq.Middleware):
    """What a Prometheus or tracing middleware would see of each enqueue."""

    def __init__(self) -> None:
        self.before: list[tuple[Any, ...]] = []
        self.after: list[tuple[Any, ...]] = []

    def before_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int | None) -> None:
        self.before.append((message.args, delay, threading.current_thread().name))

    def after_enqueue(self, broker: dramatiq.Broker, message: Message[Any], delay: int | None) -> None:
        self.after.append((message.args, delay))


def _messages(r: sync_redis.Redis, queue: str) -> list[Message[None]]:
    ids: list[bytes] = r.lrange(f"orderengine:{queue}", 0, -1)  # type: ignore[assignment]
    raw: list[bytes] = r.hmget(f"orderengine:{queue}.msgs", ids)  # type: ignore[assignment]
    return [Message.decode(m) for m in raw]


async def test_every_enqueue_passes_the_brokers_hooks_and_lands_in_its_queues(stores: Stores) -> None:
    url = stores.new_redis()
    recorder = Recorder()
    broker = build_broker(Settings(redis_url=url), worker_middleware=[recorder])
    queue = BrokerQueue(broker)
    plain = sync_redis.Redis.from_url(url)
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

        now_msgs = _messages(plain, QUEUE_NAME)
        later_msgs = _messages(plain, f"{QUEUE_NAME}.DQ")
        assert [m.args for m in now_msgs] == [("order-a",), ("order-b",)]
        assert [m.args for m in later_msgs] == [("order-c",), ("order-d",)]
        assert {m.actor_name for m in now_msgs + later_msgs} == {ACTOR_NAME}
        assert abs(later_msgs[1].options["eta"] - later_msgs[0].options["eta"]) < 5_000
    finally:
        queue.close()
        for key in plain.scan_iter("orderengine:*"):  # only what this test wrote, never a whole database
            plain.delete(key)
        plain.close()
        broker.close()
