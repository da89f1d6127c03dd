"""The servicer and its interceptor at the edge, with no store behind them: bad input must never reach one.

grpcio-testing drives synchronous servicers only; ours is grpc.aio, so these call it directly with a small
recording context. Everything past validation is covered against real servers in tests/integration.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from server.auth import acting_as
from server.errors import refusal_for
from server.servicer import OrderService
from server.validation import InvalidArgument, parse_amount, parse_execute
from workers.account_store import DEFAULT_ACCOUNT
from workers.market import SOL, USDC
from workers.store import IdempotencyConflict


class Untouchable:
    """Stands in for the store, queue, hub and venues: any use is a test failure."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"bad input reached a dependency ({name})")


def service() -> OrderService:
    return OrderService(Untouchable(), Untouchable(), Untouchable())  # type: ignore[arg-type]


async def test_execute_with_bad_amount_never_touches_the_store() -> None:
    with pytest.raises(InvalidArgument) as err, acting_as(DEFAULT_ACCOUNT):
        await service().ExecuteOrder(pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="NaN"), None)  # type: ignore[arg-type]
    assert err.value.field == "amount"
    refusal = refusal_for(err.value)
    assert refusal is not None
    assert (refusal.code, refusal.message, refusal.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        str(err.value),
        "INVALID_AMOUNT",
    )
    assert refusal.violations == [("amount", err.value.problem)]


async def test_get_with_malformed_id_never_touches_the_store() -> None:
    with pytest.raises(InvalidArgument) as err, acting_as(DEFAULT_ACCOUNT):
        await service().GetOrder(pb.GetOrderRequest(order_id="nope"), None)  # type: ignore[arg-type]
    assert err.value.field == "order_id"


def test_status_mapping() -> None:
    import psycopg

    conflict, outage = refusal_for(IdempotencyConflict("x")), refusal_for(psycopg.OperationalError("down"))
    assert conflict is not None and conflict.code == grpc.StatusCode.ALREADY_EXISTS
    assert conflict.reason == "IDEMPOTENCY_KEY_REUSED"
    assert outage is not None and outage.code == grpc.StatusCode.UNAVAILABLE
    assert refusal_for(RuntimeError("bug")) is None


def test_parse_execute_normalises() -> None:
    req = pb.ExecuteOrderRequest(
        token_in="sol", token_out="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", amount=" 1.5 "
    )
    new = parse_execute(req)
    assert (new.token_in, new.token_out, new.amount_in, new.slippage_bps) == ("SOL", "USDC", 1_500_000_000, 50)
    assert new.idempotency_key is None


@pytest.mark.parametrize(("text", "units"), [("1", 10**9), ("0.000000001", 1), (".5", 5 * 10**8), ("007", 7 * 10**9)])
def test_amounts_convert_exactly(text: str, units: int) -> None:
    assert parse_amount(text, SOL) == units


def test_amount_decimals_follow_the_token() -> None:
    assert parse_amount("0.000001", USDC) == 1
    with pytest.raises(InvalidArgument, match="at most 6"):
        parse_amount("0.0000001", USDC)
