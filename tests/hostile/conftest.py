"""Hostile input on every interface: one system of their own (fuzzed orders move its market), the bridge in front
of it, and the logs of both watched for anything a refusal should never produce."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.hostile.tally import FACTOR, LONG, TALLY
from tests.integration.bridge_harness import BridgeThread
from tests.stack import Stack, Stores

# What a server or bridge log must never show for input a client sent: these mean a bug escaped.
BUG_MARKERS = ("Traceback", "unhandled error", "Unexpected [", "Exception in ASGI application")


@pytest.fixture(scope="package")
def hostile_stack(stores: Stores) -> Iterator[Stack]:
    s = Stack.start(stores)
    yield s
    s.stop()


@pytest.fixture(scope="package")
def grpc_channel(hostile_stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(hostile_stack.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="package")
def sync_stub(grpc_channel: grpc.Channel) -> pb_grpc.OrderServiceStub:
    return pb_grpc.OrderServiceStub(grpc_channel)


@pytest.fixture(scope="package")
def db(hostile_stack: Stack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(hostile_stack.database_url, autocommit=True) as conn:
        yield conn


def stored_orders(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="package")
def final_orders(sync_stub: pb_grpc.OrderServiceStub) -> list[str]:
    """Two orders that have reached their terminal event: real ids for mutated requests to start from."""
    ids = [
        sync_stub.ExecuteOrder(pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount=a), timeout=10).order_id
        for a in ("0.01", "0.02")
    ]
    for order_id in ids:
        for _ in sync_stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), timeout=30):
            pass
    return ids


class ErrorRecords(logging.Handler):
    """Collects the bridge's ERROR records (uvicorn logs an exception escaping the app as one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="package")
def bridge(hostile_stack: Stack, bridge_errors: ErrorRecords) -> Iterator[BridgeThread]:
    """The bridge in this process, its error records collected from its first request on."""
    b = BridgeThread(hostile_stack.grpc_target).start()
    yield b
    b.stop()


@pytest.fixture(scope="package")
def bridge_errors() -> Iterator[ErrorRecords]:
    handler = ErrorRecords()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def assert_no_bug_logged(stack: Stack, bridge_errors: ErrorRecords | None = None) -> None:
    """Refusals are not bugs: neither the server's log nor the bridge's may show a traceback for them."""
    log = stack.log_tail("serve", lines=100_000)
    bugs = [line for line in log.splitlines() if any(marker in line for marker in BUG_MARKERS)]
    assert not bugs, "the server logged a bug for hostile input:\n" + "\n".join(bugs[:20])
    if bridge_errors is not None:
        messages = [r.getMessage() for r in bridge_errors.records]
        assert not messages, f"the bridge logged errors for hostile input: {messages[:10]}"


def assert_serving(channel: grpc.Channel) -> None:
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.tried:
        return
    mode = f"long mode, budgets x{FACTOR}, unseeded" if LONG else "bounded, seeded"
    terminalreporter.section(f"hostile input tried ({mode}; RELIABILITY.md)")
    for line in TALLY.lines():
        terminalreporter.line(line)
