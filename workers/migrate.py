"""Schema migrations: numbered SQL files applied once each, under an advisory lock so many processes may race."""

from __future__ import annotations

from importlib import resources

import psycopg

_LOCK_ID = 0x0DE5E7  # any constant; one migrator at a time across every process


def _migrations() -> list[tuple[int, str]]:
    files = sorted(
        (f for f in resources.files("workers.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    numbered = [(int(f.name.split("_", 1)[0]), f.read_text()) for f in files]
    versions = [version for version, _ in numbered]
    # Two branches can each add "the next" migration; a repeated number would silently skip one of them.
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise RuntimeError(f"migration numbers used twice: {duplicates}; renumber one of each pair")
    return numbered


def migrate(database_url: str) -> list[int]:
    """Applies what is missing; returns the versions applied now."""
    applied: list[int] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in _migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied
