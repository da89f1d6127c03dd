"""Session fixtures: real stores and running systems shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from server.embedded import EmbeddedRedis
from tests.integration.otlp_receiver import OtlpReceiver
from tests.rabbitmq import RabbitMQForTests
from tests.stack import Stack, Stores

# The seed of every test market; tests that predict failures use the same one.
MARKET_SEED = 7
FLAKY_FAILURE_RATE = 0.3


@pytest.fixture(scope="session")
def stores() -> Iterator[Stores]:
    s = Stores.start_for_tests()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """An OTLP collector on a free loopback port, for the modules whose systems export traces to it."""
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def stack(stores: Stores) -> Iterator[Stack]:
    """A healthy system: zero latency, no injected failures."""
    s = Stack.start(stores)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def flaky_stack(stores: Stores) -> Iterator[Stack]:
    """A system whose venues and chain fail at FLAKY_FAILURE_RATE, seeded: outcomes are predictable."""
    s = Stack.start(stores, MARKET_FAILURE_RATE=str(FLAKY_FAILURE_RATE))
    yield s
    s.stop()


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of the test's own (embedded, ~0.1 s to start): for a test that must know no other system's worker
    shares its queue (the shared server's database indexes are handed out in turn and wrap around)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQForTests]:
    """TEST_BROKER_URL, or a private rabbitmq-server; the tests that ask for it are skipped, saying why, without."""
    r = RabbitMQForTests.start()
    yield r
    r.stop()


@pytest.fixture(scope="session", params=["redis", "amqp"])
def broker_flaky_stack(request: pytest.FixtureRequest, stores: Stores) -> Iterator[Stack]:
    """The flaky system on each broker in turn: Dramatiq's Redis broker, then RabbitMQ."""
    env = {"MARKET_FAILURE_RATE": str(FLAKY_FAILURE_RATE)}
    if request.param == "amqp":
        env["BROKER_URL"] = request.getfixturevalue("rabbitmq").new_broker_url()
    s = Stack.start(stores, **env)
    yield s
    s.stop()


@pytest.fixture(scope="session")
async def broker_flaky_stub(broker_flaky_stack: Stack) -> AsyncIterator[pb_grpc.OrderServiceStub]:
    async with grpc.aio.insecure_channel(broker_flaky_stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


@pytest.fixture(scope="session")
async def channel(stack: Stack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> pb_grpc.OrderServiceStub:
    return pb_grpc.OrderServiceStub(channel)


@pytest.fixture(scope="session")
async def flaky_stub(flaky_stack: Stack) -> AsyncIterator[pb_grpc.OrderServiceStub]:
    async with grpc.aio.insecure_channel(flaky_stack.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints what the fault-injection tests measured; RELIABILITY.md quotes the latest run."""
    from tests.fault.tools import FIGURES

    if not FIGURES:
        return
    terminalreporter.section("reliability figures (RELIABILITY.md)")
    for fault, figures in FIGURES.items():
        terminalreporter.line(f"{fault}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
