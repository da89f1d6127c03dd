"""The reconciler re-drives orders whose broker messages vanished, on either broker: the server queues orders with
no worker running, the queue is emptied behind its back (a broker that lost its data), and a worker started
afterwards still takes every order to its end, settling each once."""

from __future__ import annotations

import pika
import pytest
import redis as sync_redis

from tests.fault.tools import assert_each_event_once, assert_nothing_lost, check_ledger, place_orders, watch_many
from tests.stack import Stack, Stores
from workers.queue import QUEUE_NAME

ORDERS = 20


def _empty_redis_queue(url: str) -> int:
    r = sync_redis.Redis.from_url(url)
    try:
        queued = int(r.llen(f"orderengine:{QUEUE_NAME}"))
        for key in r.scan_iter("orderengine:*"):  # the test's own Redis
            r.delete(key)
        return queued
    finally:
        r.close()


def _empty_rabbitmq_queue(url: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:  # the stack's own virtual host
        purged = conn.channel().queue_purge(QUEUE_NAME)
        return int(purged.method.message_count)


@pytest.mark.parametrize("kind", ["redis", "amqp"])
async def test_orders_whose_messages_vanished_are_redriven(
    stores: Stores, own_redis: str, kind: str, request: pytest.FixtureRequest
) -> None:
    env = {"REDIS_URL": own_redis, "RECONCILE_IDLE_SECONDS": "1", "RECONCILE_INTERVAL_SECONDS": "0.5"}
    if kind == "amqp":
        env["BROKER_URL"] = request.getfixturevalue("rabbitmq").new_broker_url()
    stack = Stack.launch(stores, env, worker=False)
    try:
        order_ids = await place_orders(stack.grpc_target, ORDERS)
        broker_url = env.get("BROKER_URL", own_redis)
        emptied = _empty_rabbitmq_queue(broker_url) if kind == "amqp" else _empty_redis_queue(broker_url)
        assert emptied == ORDERS  # every order's message was queued, and is gone now

        stack.spawn("worker", "worker")
        watched = await watch_many(stack.grpc_target, order_ids, within=60)
        assert_each_event_once(watched)
        check = check_ledger(stack.database_url)
        assert_nothing_lost(check, ORDERS)
        assert check.confirmed == ORDERS
    finally:
        stack.stop()
