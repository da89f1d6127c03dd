"""The dev market's administration as a newcomer meets it: a MARKET_SEED that cannot apply says so, `orderengine
market reset` brings a drained market back, and `orderengine pools` / `migrate` behave at a shell's edges."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from server.cli import build_parser
from tests.stack import Stores
from workers.market import genesis_pools

ORDERENGINE = str(Path(sys.executable).with_name("orderengine"))


def orderengine(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "MARKET_SEED")}
    return subprocess.run(
        [ORDERENGINE, *args],
        env={**environment, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def database(stores: Stores) -> Iterator[str]:
    url = stores.new_database()
    yield url
    stores.drop_database(url)


def pool_states(database_url: str) -> dict[str, tuple[dict[str, object], int]]:
    with psycopg.connect(database_url) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, state, version FROM pools")}


def test_another_seed_on_an_existing_market_says_it_is_not_applied(database: str) -> None:
    first = orderengine("migrate", database_url=database, MARKET_SEED="7")
    assert first.returncode == 0, first.stderr
    assert "not applied" not in first.stderr
    again = orderengine("migrate", database_url=database, MARKET_SEED="7")
    assert "not applied" not in again.stderr
    other = orderengine("migrate", database_url=database, MARKET_SEED="9")
    assert other.returncode == 0
    assert "MARKET_SEED=9 is not applied" in other.stderr and "made with MARKET_SEED=7" in other.stderr
    assert "orderengine market reset --seed 9" in other.stderr
    assert {pid: state for pid, (state, _) in pool_states(database).items()} == {
        p.id: p.to_json() for p in genesis_pools(7)
    }


def test_market_reset_brings_back_a_drained_market(database: str) -> None:
    assert orderengine("migrate", database_url=database, MARKET_SEED="7").returncode == 0
    drained = next(iter(pool_states(database)))
    with psycopg.connect(database) as conn:  # as if one enormous order had emptied a pool
        conn.execute("UPDATE pools SET state = %s, version = version + 1 WHERE id = %s", (Jsonb({}), drained))
    before = pool_states(database)

    reset = orderengine("market", "reset", "--seed", "9", database_url=database)
    assert reset.returncode == 0, reset.stderr
    assert "MARKET_SEED=9" in reset.stdout
    after = pool_states(database)
    assert {pid: state for pid, (state, _) in after.items()} == {p.id: p.to_json() for p in genesis_pools(9)}
    # A new version for every pool: each process's cached copy is read again.
    assert all(after[pid][1] > before[pid][1] for pid in before)
    # The seed is now the market's: starting with it says nothing more.
    assert "not applied" not in orderengine("migrate", database_url=database, MARKET_SEED="9").stderr


def test_pools_into_a_closed_pipe_and_migrate_without_redis(database: str) -> None:
    migrated = orderengine("migrate", database_url=database)  # no REDIS_URL: migrate does not use Redis
    assert migrated.returncode == 0, migrated.stderr
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    piped = subprocess.run(
        f"{ORDERENGINE} pools | head -2",
        shell=True,
        env={**environment, "DATABASE_URL": database},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert len(piped.stdout.splitlines()) == 2
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr


def test_help_texts_cover_every_option() -> None:
    def every_action(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
        for action in parser._actions:  # argparse keeps no public list of a parser's arguments
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    for where, inner in every_action(sub):
                        yield f"{name} {where}", inner
            else:
                yield parser.prog, action

    missing = [f"{where}: {action.dest}" for where, action in every_action(build_parser()) if not action.help]
    assert missing == []
    assert subprocess.run([ORDERENGINE, "worker", "--help"], capture_output=True, timeout=30).returncode == 0
