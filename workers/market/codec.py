"""A pool's JSON state back to the pool, dispatching on its venue (kept apart so venues never import it)."""

from __future__ import annotations

from typing import Any

from workers.market.meteora import DlmmPool
from workers.market.pool import Pool
from workers.market.raydium import CpmmPool


def pool_from_json(d: dict[str, Any]) -> Pool:
    dex = d.get("dex")
    if dex == "raydium":
        return CpmmPool.from_json(d)
    if dex == "meteora":
        return DlmmPool.from_json(d)
    raise ValueError(f"unknown dex {dex!r} in pool state")
