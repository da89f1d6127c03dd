"""The mock chain: signatures, slot-paced confirmation and blockhash expiry.

A transaction's fate is fixed when it is submitted (a seeded draw decides whether it is dropped, and when it
lands), so resubmitting the same signed transaction is idempotent and every worker agrees on the outcome.
The ledger itself lives in PostgreSQL (see `store.py`), where landing a swap and moving the pools happen in one
transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import base58

from workers import faults

SLOT_MS = 400
# Real Solana keeps a blockhash valid for ~150 slots; the mock shortens it so expiry is seen within seconds.
BLOCKHASH_VALID_SLOTS = 25
CONFIRM_SLOTS = (5, 7)


@dataclass(frozen=True, slots=True)
class ChainProfile:
    slot_ms: int
    valid_slots: int
    confirm_slots: tuple[int, int]

    @classmethod
    def for_latency(cls, latency: str) -> ChainProfile:
        if latency == "zero":
            return cls(slot_ms=0, valid_slots=BLOCKHASH_VALID_SLOTS, confirm_slots=(0, 0))
        return cls(slot_ms=SLOT_MS, valid_slots=BLOCKHASH_VALID_SLOTS, confirm_slots=CONFIRM_SLOTS)


@dataclass(frozen=True, slots=True)
class Submission:
    signature: str
    submitted_at: datetime
    lands_at: datetime | None  # None: dropped, it will never land
    expires_at: datetime


def signature_for(seed: int, order_id: str, attempt: int) -> str:
    """A base58 64-byte signature; the same order and attempt always sign the same transaction."""
    digest = hashlib.sha512(f"{seed}|{order_id}|{attempt}".encode()).digest()
    return base58.b58encode(digest).decode()


def plan_submission(profile: ChainProfile, seed: int, failure_rate: float, signature: str, now: datetime) -> Submission:
    expires_at = now + timedelta(milliseconds=profile.slot_ms * profile.valid_slots)
    if faults.transaction_dropped(seed, failure_rate, signature):
        return Submission(signature, now, None, expires_at)
    lo, hi = profile.confirm_slots
    slots = lo + int(faults.draw(seed, "slots", signature) * (hi - lo + 1))
    return Submission(signature, now, now + timedelta(milliseconds=profile.slot_ms * slots), expires_at)


def instructions_for(token_in_native: bool, token_out_native: bool, legs: int) -> tuple[str, ...]:
    """The built transaction's steps by name, as a Solana swap would list them."""
    steps = ["set_compute_unit_limit", "set_compute_unit_price"]
    if token_in_native:
        steps += ["create_ata_wsol", "wrap_sol", "sync_native"]
    if token_out_native:
        steps += ["create_ata_wsol"] if not token_in_native else []
    else:
        steps += ["create_ata_token_out"]
    steps += ["swap"] * legs
    if token_in_native or token_out_native:
        steps += ["unwrap_sol"]
    return tuple(steps)
