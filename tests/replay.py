"""Exactly-once, shown rather than assumed: the market replayed from genesis, order by order, equals what is stored.

Every confirmed order's route is re-executed on the genesis pools of the stack's seed, in settlement order; each
leg's output must match the ledger, and the pools at the end must equal the stored pools to the last base unit. A
swap that landed twice, a failed order that moved a pool, or a lost pool update would each leave a difference.
Pools move only by settlement here: the stacks that call this run with market drift off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from workers.market import Pool, format_amount, genesis_pools, route_from_json
from workers.market import execute as execute_route


@dataclass(frozen=True)
class Replay:
    pools: dict[str, Pool]
    order_ids: list[str]  # in settlement order


def replay_settlements(database_url: str, seed: int) -> Replay:
    """Genesis, then every settled order's route re-executed in settlement order; checks each outcome on the way."""
    pools = {p.id: p for p in genesis_pools(seed)}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT s.order_id, o.route, s.amount_out, s.legs, s.settled_at FROM settlements s "
            "JOIN orders o ON o.id = s.order_id ORDER BY s.settled_at, s.order_id"
        ).fetchall()
    replayed: list[str] = []
    last_on_pool: dict[str, Any] = {}
    for order_id, route_json, amount_out, legs, settled_at in rows:
        route = route_from_json(route_json)
        for pool_id in route.pool_ids:
            # Settlements sharing a pool hold its row lock in turn, so their stamps are strictly ordered.
            assert last_on_pool.get(pool_id, settled_at) <= settled_at
            assert last_on_pool.get(pool_id) != settled_at, f"two settlements on {pool_id} at {settled_at}"
            last_on_pool[pool_id] = settled_at
        done = execute_route(route, pools)
        assert done.amount_out == amount_out, order_id
        assert [leg["amount_out"] for leg in legs] == [
            format_amount(leg.amount_out, leg.token_out) for leg in done.legs
        ], order_id
        pools.update(done.pools_after)
        replayed.append(str(order_id))
    return Replay(pools, replayed)


def pool_states(database_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT id, state FROM pools")}


@dataclass(frozen=True)
class ExactlyOnce:
    replayed: int  # confirmed orders re-executed from genesis
    pools_moved: int  # pools whose state differs from genesis


def assert_exactly_once(database_url: str, seed: int) -> ExactlyOnce:
    """Replay equals the stored market; each confirmed order has exactly one landed transaction, others none."""
    replay = replay_settlements(database_url, seed)
    stored = pool_states(database_url)
    expected = {pool_id: pool.to_json() for pool_id, pool in replay.pools.items()}
    differing = sorted(pool_id for pool_id in expected if stored.get(pool_id) != expected[pool_id])
    assert not differing and stored.keys() == expected.keys(), f"stored pools differ from the replay: {differing}"
    with psycopg.connect(database_url) as conn:
        per_order = conn.execute(
            "SELECT o.id, o.status, o.tx_signature, "
            "  (SELECT count(*) FROM settlements s WHERE s.order_id = o.id), "
            "  (SELECT count(*) FROM settlements s WHERE s.order_id = o.id AND s.signature = o.tx_signature), "
            "  (SELECT count(*) FROM chain_transactions t JOIN settlements s ON s.signature = t.signature "
            "     WHERE t.order_id = o.id AND t.lands_at IS NOT NULL) "
            "FROM orders o"
        ).fetchall()
    for order_id, status, signature, settled, settled_as_stored, landed in per_order:
        if status == "confirmed":
            # One ledger row, under the signature the order reports, for a transaction the chain says landed.
            assert (settled, settled_as_stored, landed) == (1, 1, 1), (order_id, signature, settled, landed)
        else:
            assert settled == 0, (order_id, status, "settled but not confirmed")
    confirmed = sum(1 for row in per_order if row[1] == "confirmed")
    assert len(replay.order_ids) == confirmed
    genesis = {p.id: p.to_json() for p in genesis_pools(seed)}
    return ExactlyOnce(
        replayed=len(replay.order_ids), pools_moved=sum(1 for k, v in stored.items() if genesis.get(k) != v)
    )
