"""What one load run measured: per-order latencies, event delivery, counts, and their summaries."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values: list[float], qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float | int | None]:
    """Percentiles of seconds, in milliseconds, plus the count and the maximum."""
    data = sorted(values)
    out: dict[str, float | int | None] = {"n": len(data)}
    for q in qs:
        v = percentile(data, q)
        out[f"p{q}"] = None if v is None else round(v * 1000, 2)
    out["max"] = round(data[-1] * 1000, 2) if data else None
    return out


@dataclass
class Recorder:
    """Counts what happened inside the measurement window [window_start, window_end) (monotonic seconds)."""

    window_start: float
    window_end: float
    sent: int = 0
    sent_in_window: int = 0
    confirmed_in_window: int = 0
    confirmed: int = 0
    failed: int = 0
    errors: int = 0
    unfinished: int = 0
    shed: int = 0
    closing: bool = False  # set when the drain is over: what fails now was cut short, not broken
    error_samples: list[str] = field(default_factory=list)
    execute_latency: list[float] = field(default_factory=list)
    e2e_latency: list[float] = field(default_factory=list)
    delivery_latency: list[float] = field(default_factory=list)
    events: int = 0

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end

    def on_sent(self, t: float) -> None:
        self.sent += 1
        if self.in_window(t):
            self.sent_in_window += 1

    def on_error(self, exc: BaseException) -> None:
        if self.closing:  # gRPC reports a cancelled call as an error of its own
            self.unfinished += 1
            return
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    def on_done(self, sent_at: float, executed_at: float, done_at: float, confirmed: bool) -> None:
        if confirmed:
            self.confirmed += 1
            if self.in_window(done_at):
                self.confirmed_in_window += 1
        else:
            self.failed += 1
        if self.in_window(sent_at):
            self.execute_latency.append(executed_at - sent_at)
            if confirmed:
                self.e2e_latency.append(done_at - sent_at)

    def on_event(self, commit_wall: float, watch_sent_wall: float, sent_at: float) -> None:
        """An event reached its watcher; its delivery latency counts if it was committed after the watch began
        (an earlier one is replayed from PostgreSQL, not delivered live)."""
        self.events += 1
        if commit_wall >= watch_sent_wall and self.in_window(sent_at):
            self.delivery_latency.append(time.time() - commit_wall)

    def result(self) -> dict[str, Any]:
        duration = self.window_end - self.window_start
        return {
            "duration_s": round(duration, 2),
            "offered_per_s": round(self.sent_in_window / duration, 1),
            "throughput_per_s": round(self.confirmed_in_window / duration, 1),
            "sent": self.sent,
            "confirmed": self.confirmed,
            "failed": self.failed,
            "errors": self.errors,
            "unfinished": self.unfinished,
            "shed": self.shed,
            "error_samples": self.error_samples,
            "e2e_ms": summary_ms(self.e2e_latency),
            "execute_ms": summary_ms(self.execute_latency),
            "delivery_ms": summary_ms(self.delivery_latency),
        }
