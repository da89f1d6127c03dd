"""A RabbitMQ broker that cannot be reached: ExecuteOrder answers UNAVAILABLE naming it, and stores nothing (the
same promise the Redis broker keeps, tests/fault/test_redis_loss.py)."""

from __future__ import annotations

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import count_rows
from tests.scratch_stores import free_port
from tests.stack import Stack, Stores


async def test_unreachable_rabbitmq_refuses_orders_and_stores_nothing(stores: Stores) -> None:
    # A port nothing listens on: connections are refused at once, as when RabbitMQ is down.
    stack = Stack.launch(stores, {"BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}, worker=False)
    try:
        async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
            stub = pb_grpc.OrderServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ExecuteOrder(
                    pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="1"), timeout=30
                )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "RabbitMQ" in (err.value.details() or "")
        assert count_rows(stack.database_url, "orders") == 0
    finally:
        stack.stop()
