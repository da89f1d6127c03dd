"""What a run measures: the default plan (`make bench`, ~19 minutes with the broker comparison, 2026-12-06) and
the `--quick` subset (1-2 minutes)."""

from __future__ import annotations

from dataclasses import dataclass, field

SCENARIOS = (
    "zero",
    "realistic",
    "threads",
    "fanout",
    "bridge",
    "transports",
    "brokers",
    "profile",
    "telemetry",
    "burst",
    "floor",
    "cost",
)
TRANSPORTS = ("grpc", "websocket", "grpc-web")


@dataclass(frozen=True)
class Ramp:
    """Closed-loop steps of growing concurrency, stopped once throughput stops growing."""

    concurrency: tuple[int, ...]
    warmup: float
    duration: float
    drain: float


@dataclass(frozen=True)
class Fanout:
    """One fan-out run: `streams` watchers spread evenly over `orders` orders, placed before any worker runs."""

    latency: str
    streams: int
    orders: int
    via: str = "grpc"  # or "bridge": browser WebSockets through one bridge process
    server_processes: int = 1


@dataclass(frozen=True)
class Plan:
    workers: tuple[int, ...] = (1, 2, 4)
    zero_ramp: Ramp = Ramp((8, 32, 128, 384), warmup=2, duration=5, drain=5)
    # Open-loop rates: fractions of the best measured zero-latency throughput, plus half the 500/s target.
    zero_fractions: tuple[float, ...] = (0.25, 0.5, 0.8)
    zero_fixed_rates: tuple[float, ...] = (250,)
    open_warmup: float = 2
    open_duration: float = 8
    realistic_ramp: Ramp = Ramp((300, 600, 1200), warmup=4, duration=8, drain=8)
    realistic_rates: tuple[float, ...] = (100, 200)
    realistic_open_warmup: float = 4
    realistic_open_duration: float = 10
    # WORKER_THREADS settings compared under realistic latency with one worker process (a knob, not code).
    thread_counts: tuple[int, ...] = (8, 32, 64)
    threads_ramp: Ramp = Ramp((600,), warmup=4, duration=8, drain=8)
    fanout: tuple[Fanout, ...] = (
        Fanout("zero", 1_000, 100),
        Fanout("zero", 10_000, 10_000),  # ten thousand users, each watching their own order
        Fanout("zero", 10_000, 250),  # forty watchers per order: every event is a burst of forty messages
        Fanout("zero", 50_000, 1_000, server_processes=4),
        Fanout("zero", 10_000, 250, via="bridge"),
    )
    bridge_ramp: Ramp = Ramp((16, 64, 256), warmup=2, duration=5, drain=5)
    bridge_rates: tuple[float, ...] = (100,)
    bridge_realistic_ramp: Ramp = Ramp((600,), warmup=4, duration=8, drain=8)
    # The same orders watched three ways (native gRPC, the bridge's WebSocket, its gRPC-Web): a closed loop under
    # load, a light open loop, and a fan-out of many streams per order for streaming throughput.
    transport_ramp: Ramp = Ramp((64,), warmup=2, duration=6, drain=5)
    transport_rates: tuple[float, ...] = (40,)
    transport_fanout: tuple[int, int] = (1_000, 10)
    # The same system on each Dramatiq broker (BROKER_URL), back to back: Redis, then a private RabbitMQ.
    broker_workers: int = 2
    broker_zero_ramp: Ramp = Ramp((32, 128), warmup=2, duration=5, drain=5)
    broker_realistic_ramp: Ramp = Ramp((600,), warmup=4, duration=8, drain=8)
    profile_seconds: float = 10
    profile_concurrency: int = 128
    # Telemetry off / metrics / metrics + tracing, alternated for `telemetry_rounds` rounds at a fixed rate.
    telemetry_rate: float = 50
    telemetry_rounds: int = 2
    telemetry_duration: float = 10
    # Bursts (issue 14, part 3): `burst_size` orders sent at once, `burst_rounds` times, idle in between, over gRPC
    # and through the bridge (HTTP POST, then one WebSocket per order).
    burst_size: int = 200
    burst_rounds: int = 10
    burst_idle_s: float = 2.0
    # More server processes (`serve --processes N`) for the gRPC bursts too: the lever the burst section names.
    burst_server_processes: tuple[int, ...] = (2,)
    # The floor: orders through a gRPC servicer that does nothing, to show what grpc.aio alone costs per order.
    floor_orders: int = 5_000
    # CPU per order part by part (bench/cost.py): accepting, working off the backlog, opening streams, live delivery.
    cost_orders: int = 3_000
    notes: list[str] = field(default_factory=list)


DEFAULT = Plan()

QUICK = Plan(
    workers=(1, 2),
    zero_ramp=Ramp((32, 128), warmup=1, duration=3, drain=5),
    zero_fractions=(0.5,),
    zero_fixed_rates=(250,),
    open_warmup=1,
    open_duration=4,
    realistic_ramp=Ramp((500,), warmup=3, duration=5, drain=15),
    realistic_rates=(200,),
    realistic_open_warmup=3,
    realistic_open_duration=5,
    thread_counts=(),
    fanout=(Fanout("zero", 1_000, 100),),
    bridge_ramp=Ramp((64,), warmup=1, duration=3, drain=5),
    bridge_rates=(),
    bridge_realistic_ramp=Ramp((), warmup=0, duration=0, drain=0),
    transport_ramp=Ramp((64,), warmup=1, duration=3, drain=5),
    transport_rates=(),
    transport_fanout=(500, 5),
    broker_zero_ramp=Ramp((128,), warmup=1, duration=3, drain=5),
    broker_realistic_ramp=Ramp((500,), warmup=3, duration=5, drain=15),
    profile_seconds=6,
    telemetry_rounds=1,
    telemetry_duration=6,
    burst_rounds=3,
    floor_orders=2_000,
    cost_orders=1_000,
)
