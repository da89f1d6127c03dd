"""How many of a property test's examples reached its checks: an early exit for most examples cannot pass quietly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Share:
    tried: int = 0
    checked: int = 0

    def assert_at_least(self, fraction: float) -> None:
        assert self.tried > 0
        assert self.checked >= fraction * self.tried, (
            f"only {self.checked} of {self.tried} examples reached the checks; the strategy mostly misses"
        )
