"""What the hostile-input tests tried and what came back, printed at the end of the run (RELIABILITY.md quotes it).

`FUZZ=long` (what `make fuzz` sets) multiplies every bounded budget by `FUZZ_FACTOR` (default 10) and lets
hypothesis pick fresh inputs on every run; without it the budgets are small and the inputs are the same every
run (derandomized), so `make test` stays fast and deterministic.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings

LONG = os.environ.get("FUZZ") == "long"
FACTOR = int(os.environ.get("FUZZ_FACTOR", "10")) if LONG else 1
EXAMPLES_SHOWN = 3 if LONG else 0


def fuzz_settings(examples: int) -> settings:
    """`examples` inputs, seeded, in `make test`; FACTOR times as many, unseeded, in `make fuzz`."""
    return settings(
        max_examples=examples * FACTOR,
        derandomize=not LONG,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


def budget(n: int) -> int:
    """A loop bound of the same kind, for what hypothesis does not drive (floods, repeated frames)."""
    return n * FACTOR


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    server_errors: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)

    def record(self, interface: str, outcome: str, what: object = None, *, server_error: bool = False) -> None:
        self.tried[interface] += 1
        self.outcomes[interface][outcome] += 1
        if server_error:
            self.server_errors[interface] += 1
        shown = self.examples[(interface, outcome)]
        if len(shown) < EXAMPLES_SHOWN and what is not None:
            text = repr(what)
            shown.append(text if len(text) <= 100 else f"{text[:100]}... ({len(text)} chars)")

    def lines(self) -> list[str]:
        out = []
        for interface in sorted(self.tried):
            codes = ", ".join(f"{code} {n}" for code, n in self.outcomes[interface].most_common())
            out.append(f"{interface}: {self.tried[interface]} tried ({codes})")
            for code in self.outcomes[interface]:
                out += [f"    {code} <- {example}" for example in self.examples[(interface, code)]]
        total = sum(self.tried.values())
        out.append(
            f"total: {total} hostile inputs, {sum(self.server_errors.values())} server errors, "
            f"{sum(self.stored.values())} stored for a refusal"
        )
        return out


TALLY = Tally()
