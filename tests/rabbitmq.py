"""A RabbitMQ for the tests: TEST_BROKER_URL when given, otherwise a private `rabbitmq-server` started here.

No registry embeds RabbitMQ, so the private server is Debian's `rabbitmq-server` package (`.ci/run` installs it on
a CI machine where it may). It runs as a node of its own: its own node name, data, logs, Erlang cookie (a HOME
under the temporary folder), config, AMQP port, distribution port and epmd, so it never meets a RabbitMQ that
the machine already runs on the standard ports. Each system the tests start gets a virtual host of its own, as
each gets a Redis database index of its own, and the server's data goes with its folder at the end.

With TEST_BROKER_URL the tests use that virtual host as it is. AMQP cannot make virtual hosts, and two systems
on one virtual host would take each other's messages, so it is handed to the first test that asks; the others are
skipped, saying so (leave TEST_BROKER_URL unset to run them all on a private server).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

# Debian's /usr/sbin/rabbitmq-server (and rabbitmqctl) switch to the `rabbitmq` user, its HOME and /var/log; the
# scripts behind them run the node (and talk to it) as they are told.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server",)
START_TIMEOUT_S = 90.0


def server_script() -> str | None:
    for path in SERVER_SCRIPTS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("rabbitmq-server")
    return found if found and not found.startswith("/usr/sbin/") else None


def why_no_rabbitmq() -> str | None:
    """None when the tests can have a RabbitMQ; otherwise the reason, for a skip message."""
    if os.environ.get("TEST_BROKER_URL"):
        return None
    if server_script() is None:
        return (
            "RabbitMQ variant skipped: rabbitmq-server is not installed and TEST_BROKER_URL is not set "
            "(no registry embeds RabbitMQ; `apt-get install rabbitmq-server`, which .ci/run does as root)"
        )
    if shutil.which("epmd") is None:
        return "RabbitMQ variant skipped: epmd (Erlang) is not installed, so rabbitmq-server cannot start"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RabbitMQServer:
    """A private RabbitMQ node listening for AMQP on `host`; `start` returns once it accepts connections."""

    base: Path
    host: str = "127.0.0.1"
    port: int = 0
    node: str = field(default_factory=lambda: f"oe{uuid.uuid4().hex[:10]}@localhost")
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _vhosts: int = 0

    @property
    def env(self) -> dict[str, str]:
        b = self.base
        return {
            **os.environ,
            "HOME": str(b),  # the Erlang cookie lives in HOME: this node's, shared with rabbitmqctl only
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONF_ENV_FILE": str(b / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_PID_FILE": str(b / "rabbitmq.pid"),
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "ERL_EPMD_PORT": str(self._epmd_port),
            # Erlang distribution (rabbitmqctl's way in) on loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self) -> str:
        script = server_script()
        if script is None:
            raise RuntimeError(why_no_rabbitmq() or "rabbitmq-server is not installed")
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self._dist_port, self._epmd_port = free_port(), free_port()
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.host}:{self.port}\n"
            # The guest user may connect from other hosts: the multi-host test's workers do.
            "loopback_users = none\n"
        )
        log = open(self.base / "server.log", "ab")  # noqa: SIM115 - the processes own it
        try:
            self._procs.append(
                subprocess.Popen(
                    ["epmd", "-port", str(self._epmd_port), "-address", "127.0.0.1"],
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
            self._procs.append(
                subprocess.Popen([script], env=self.env, stdout=log, stderr=log, cwd=self.base, start_new_session=True)
            )
            self._await_listening()
        except BaseException:
            self.stop()
            raise
        return self.url("/")

    def _await_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            server = self._procs[-1]
            if server.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {server.returncode}: see {self.base / 'log'}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmq-server did not listen within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)  # an Erlang node booting in another process: nothing to await but its port

    @property
    def pid(self) -> int | None:
        """The node's launcher process (the Erlang VM is among its descendants)."""
        return self._procs[-1].pid if self._procs else None

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/{quote(vhost, safe='')}"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [str(Path(server_script() or "").with_name("rabbitmqctl")), "-n", self.node, *args],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def new_vhost(self) -> str:
        self._vhosts += 1
        name = f"oe_test_{self._vhosts}"
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return self.url(name)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the node and its helpers
            proc.wait()
        self._procs.clear()


@dataclass
class RabbitMQForTests:
    """The tests' RabbitMQ: TEST_BROKER_URL's virtual host, or a fresh one on a private server."""

    server: RabbitMQServer | None
    external_url: str | None = None
    _external_taken: bool = False

    @classmethod
    def start(cls) -> RabbitMQForTests:
        external = os.environ.get("TEST_BROKER_URL")
        if external:
            return cls(server=None, external_url=external)
        reason = why_no_rabbitmq()
        if reason:
            pytest.skip(reason)
        server = RabbitMQServer(Path(tempfile.mkdtemp(prefix="oe-rabbitmq-")))
        server.start()
        return cls(server=server)

    def new_broker_url(self) -> str:
        if self.server is None:
            assert self.external_url
            if self._external_taken:
                pytest.skip(
                    "TEST_BROKER_URL is one virtual host and another test's system uses it; unset TEST_BROKER_URL "
                    "to give every RabbitMQ test a virtual host of its own on a private rabbitmq-server"
                )
            self._external_taken = True
            return self.external_url
        return self.server.new_vhost()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.server.base, ignore_errors=True)
