"""`OrderStatus`: an order's status by name, for code that reads `event.status` or `order.status`.

The generated stubs carry statuses as bare integers (`event.status == 5`); `OrderStatus(event.status)` is the
same value with a name: it compares equal to the integer and prints as `confirmed`.
"""

from __future__ import annotations

from enum import IntEnum

from orderengine.v1 import order_service_pb2 as pb


class OrderStatus(IntEnum):
    UNSPECIFIED = pb.ORDER_STATUS_UNSPECIFIED
    PENDING = pb.ORDER_STATUS_PENDING
    ROUTING = pb.ORDER_STATUS_ROUTING
    BUILDING = pb.ORDER_STATUS_BUILDING
    SUBMITTED = pb.ORDER_STATUS_SUBMITTED
    CONFIRMED = pb.ORDER_STATUS_CONFIRMED
    FAILED = pb.ORDER_STATUS_FAILED

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.CONFIRMED, OrderStatus.FAILED)
