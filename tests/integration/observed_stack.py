"""A system with everything switched on that an operator can see: `/metrics` on each process (two workers),
JSON logs, and (when a receiver is given) traces; plus a bridge process, as `orderengine bridge` runs it."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.scratch_stores import free_port
from tests.stack import Stack, Stores

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Observed:
    stack: Stack
    http: str
    serve_metrics: str
    worker_metrics: list[str]
    bridge_metrics: str

    def stop(self) -> None:
        self.stack.stop()


def _port_pair() -> int:
    """A port whose next one is free too (the second worker takes base + 1)."""
    while True:
        base = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", base + 1))
            return base
        except OSError:
            continue


def start_observed(stores: Stores, **env: str) -> Observed:
    serve, worker, bridge, http = free_port(), _port_pair(), free_port(), free_port()
    stack = Stack.start(
        stores,
        SERVE_METRICS_PORT=str(serve),
        WORKER_METRICS_PORT=str(worker),
        WORKER_PROCESSES="2",
        LOG_FORMAT="json",
        **env,
    )
    targets = [f"http://127.0.0.1:{p}/metrics" for p in (serve, worker, worker + 1, bridge)]
    stack.spawn(
        "bridge",
        "bridge",
        env={
            **stack.env,
            "HTTP_PORT": str(http),
            "HTTP_HOST": "127.0.0.1",
            "BRIDGE_METRICS_PORT": str(bridge),
            "METRICS_TARGETS": ",".join(targets),
        },
    )
    observed = Observed(
        stack=stack,
        http=f"http://127.0.0.1:{http}",
        serve_metrics=f"http://127.0.0.1:{serve}/metrics",
        worker_metrics=[f"http://127.0.0.1:{worker}/metrics", f"http://127.0.0.1:{worker + 1}/metrics"],
        bridge_metrics=f"http://127.0.0.1:{bridge}/metrics",
    )
    for url in [observed.serve_metrics, *observed.worker_metrics, observed.bridge_metrics, observed.http + "/health"]:
        wait_answering(url)
    return observed


def wait_answering(url: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)  # another process is still starting: nothing to await across processes


def families(url: str) -> set[str]:
    """The metric families the endpoint declares (counters by their name without `_total`)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return {family.name for family in text_string_to_metric_families(response.read().decode())}


def scrape(url: str) -> Samples:
    """Every sample of the endpoint, parsed as Prometheus text: {(name, sorted labels): value}."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain"), response.headers["Content-Type"]
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every sample whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))
