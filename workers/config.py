"""Configuration, read once from the environment (SPEC section 4 names the variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the engine. Unset store URLs mean "start embedded servers" (only `orderengine dev` does)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    redis_url: str | None = None
    # The Dramatiq broker: redis://... (the default: REDIS_URL) or amqp://... (RabbitMQ). Redis stays what
    # WatchOrder fan-out and event publishing use, whichever broker carries the messages.
    broker_url: str | None = None
    database_url: str | None = None
    grpc_port: int = 50051
    http_port: int = 3000
    grpc_host: str = "[::]"
    http_host: str = "0.0.0.0"
    # Where the bridge and orderctl find the gRPC service; defaults to this host's GRPC_PORT.
    grpc_target: str | None = None
    cors_origins: str = ""

    # `required`: every OrderService call needs an API key. `optional`: a call without one acts as the built-in
    # `default` account (what `orderengine dev` runs with). A wrong, malformed or revoked key is refused in both.
    auth: Literal["required", "optional"] = "required"
    # How long a process trusts what it read about a key; a revoked key is refused everywhere within this plus
    # one read (at most 4, so revocation lands within 5 s).
    auth_cache_seconds: float = Field(default=2.0, ge=0.0, le=4.0)
    # Orders per window per account unless the account says otherwise; the window is a minute (tests shorten it).
    orders_per_minute: int = Field(default=100, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)

    # TLS: a certificate and key make the gRPC port (GRPC_TLS_*) or the bridge's port (HTTP_TLS_*) TLS-only.
    grpc_tls_cert_file: str | None = None
    grpc_tls_key_file: str | None = None
    http_tls_cert_file: str | None = None
    http_tls_key_file: str | None = None
    # How the bridge reaches GRPC_TARGET: over TLS when GRPC_TARGET_TLS is set or a CA file is given (the CA
    # that signed the server's certificate; the system's roots otherwise). Under `dev` the bridge trusts
    # GRPC_TLS_CERT_FILE itself.
    grpc_target_tls: bool = False
    grpc_target_ca_file: str | None = None

    market_latency: Literal["zero", "realistic"] = "realistic"
    market_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    market_seed: int = 42
    # Under `realistic` latency, a small seeded swap on one pool this often keeps an idle market alive; 0 = off.
    market_drift_seconds: float = Field(default=5.0, ge=0.0)
    # Under `realistic` latency, the market lists a new token with a Raydium pool this often; 0 = off.
    market_launch_seconds: float = Field(default=300.0, ge=0.0)

    retry_max_attempts: int = Field(default=3, ge=1)
    retry_min_backoff_ms: int = Field(default=1000, ge=0)
    retry_max_backoff_ms: int = Field(default=4000, ge=0)

    worker_processes: int = Field(default=1, ge=1)
    # Messages in flight per worker process. No thread waits on a mock delay (async actors on one event loop); more
    # messages in flight make bigger group commits in the store, so fewer statements and commits per order.
    worker_threads: int = Field(default=32, ge=1)
    # A dead worker's unacked messages are delivered again after this long without its heartbeat (Redis), or when
    # its connection closes or misses heartbeats for this long (RabbitMQ).
    broker_heartbeat_timeout_ms: int = Field(default=15000, ge=1000)
    # That requeue runs in broker maintenance, on this many broker commands per million (Dramatiq's default).
    broker_maintenance_chance: int = Field(default=1000, ge=0, le=1_000_000)
    # A non-final order with no transition for this long is re-enqueued by the reconciler.
    reconcile_idle_seconds: float = Field(default=30.0, gt=0)
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    data_dir: str = ".data"

    # Where each process kind serves Prometheus `/metrics`; 0 = neither kept nor served. `--processes N` gives the i-th
    # process the port + i; `orderengine dev` picks 9400 (serve), 9399 (bridge) and 9410 (workers) when unset.
    serve_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    bridge_metrics_port: int = Field(default=0, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    # The `/metrics` URLs (comma-separated) whose sum the bridge serves at /api/metrics for the page's charts.
    metrics_targets: str = ""
    # WatchOrder streams one server process serves at once; past it a new one is refused (RESOURCE_EXHAUSTED).
    # BENCHMARKS.md gives the server's memory per 1,000 streams, to size it.
    watch_max_streams: int = Field(default=20_000, ge=1)
    # gRPC's queue of calls that arrived before the server picked them up (a burst of new streams waits there);
    # past it gRPC cancels calls (CANCELLED), so it is kept above watch_max_streams.
    grpc_max_pending_calls: int = Field(default=30_000, ge=1)

    @model_validator(mode="after")
    def _pending_above_streams(self) -> Settings:
        if self.grpc_max_pending_calls < self.watch_max_streams:
            raise ValueError(
                f"GRPC_MAX_PENDING_CALLS ({self.grpc_max_pending_calls}) must be at least WATCH_MAX_STREAMS "
                f"({self.watch_max_streams}): a burst of streams past it would be cancelled instead of served"
            )
        return self

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        for side in ("grpc", "http"):
            cert, key = getattr(self, f"{side}_tls_cert_file"), getattr(self, f"{side}_tls_key_file")
            if bool(cert) != bool(key):
                name = side.upper()
                raise ValueError(f"{name}_TLS_CERT_FILE and {name}_TLS_KEY_FILE must be set together")
        return self

    @property
    def target(self) -> str:
        return self.grpc_target or f"localhost:{self.grpc_port}"

    @property
    def auth_required(self) -> bool:
        return self.auth == "required"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
