"""Seeded fault injection: the same MARKET_SEED gives the same failures for the same order and attempt.

Draws are a hash of the seed and a key, not a shared random stream, so they do not depend on how many workers
run or in which order they pick messages up; tests predict outcomes with these same functions.
"""

from __future__ import annotations

import hashlib


def draw(seed: int, *key: object) -> float:
    """A uniform number in [0, 1) fixed by the seed and the key."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def venue_fails(seed: int, rate: float, order_id: str, attempt: int, dex: str) -> bool:
    return rate > 0 and draw(seed, "venue", order_id, attempt, dex) < rate


def transaction_dropped(seed: int, rate: float, signature: str) -> bool:
    return rate > 0 and draw(seed, "drop", signature) < rate
