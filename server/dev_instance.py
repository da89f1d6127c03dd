"""One `orderengine dev` per data folder, and its parts' readiness.

The running instance holds an exclusive lock on `<data>/dev.lock` and writes there who it is (pid, ports, data
folder), so a second `make run` in the same clone refuses at once and names the first, instead of stopping the
stores that the first one is using. The ports are checked before anything starts, for the same reason. The lock
belongs to the open file: it goes away with the process, however it ends.

The parts report that they serve over a datagram socket (`workers.readiness`), so the banner is printed only once
every one of them does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

LOCK_FILE = "dev.lock"


class AlreadyRunning(Exception):
    """Another `orderengine dev` serves from this data folder, or holds a port this one needs."""


@dataclass(frozen=True)
class Instance:
    pid: int
    grpc_port: int
    http_port: int
    data_dir: str

    def describe(self) -> str:
        return f"pid {self.pid}, gRPC port {self.grpc_port}, HTTP port {self.http_port}, data folder {self.data_dir}"


class DevLock:
    """The claim of this process on a data folder; released by `release` or when the process ends."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file

    @classmethod
    def claim(cls, me: Instance) -> Self:
        data = Path(me.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        file = open(data / LOCK_FILE, "a+")  # noqa: SIM115 - held for the life of the instance
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            text = file.read()
            file.close()
            raise AlreadyRunning(_refusal(text, data)) from None
        file.seek(0)
        file.truncate()
        file.write(json.dumps(me.__dict__) + "\n")
        file.flush()
        return cls(file)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self._file.truncate(0)
        self._file.close()


def _refusal(text: str, data: Path) -> str:
    try:
        other = Instance(**json.loads(text))
        who = f"orderengine dev is already running from this data folder ({other.describe()})"
    except (ValueError, TypeError):
        who = f"another orderengine dev holds {data / LOCK_FILE}"
    return (
        f"{who}. Its stores are left alone: stop it first (Ctrl-C in its terminal), use it as it is, or start a "
        "second one with its own DATA_DIR, GRPC_PORT and HTTP_PORT."
    )


def check_port_free(host: str, port: int, variable: str) -> None:
    """Refuses a port some process listens on (gRPC shares ports with SO_REUSEPORT, so binding would not fail)."""
    host = host.strip("[]") or None  # type: ignore[assignment]
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise AlreadyRunning(
            f"port {port} ({variable}) is already in use ({exc.strerror}): another orderengine, or another "
            f"program, listens there; stop it or set {variable} to a free port"
        ) from None


class Readiness:
    """Collects the parts' "READY=1" datagrams on an abstract Unix socket named after this process."""

    def __init__(self) -> None:
        self.address = f"@orderengine-dev-{os.getpid()}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.address[1:])
        self._sock.setblocking(False)
        self.ready: Counter[str] = Counter()

    def poll(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
            if fields.get("READY") == "1" and "PART" in fields:
                self.ready[fields["PART"]] += 1

    def missing(self, expected: Counter[str]) -> list[str]:
        return [f"{part} ({self.ready[part]}/{n})" for part, n in expected.items() if self.ready[part] < n]

    def close(self) -> None:
        self._sock.close()
