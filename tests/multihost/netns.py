"""Hosts for the multi-host test: Linux network namespaces on one switch, made with `ip netns` (Debian's iproute2).

Each host is a namespace with one veth link (`eth0`) to a bridge that lives in a switch namespace of its own, so
nothing is added to the machine's own bridges or firewall; the test process reaches the hosts through one more
veth whose other end is on that switch. The subnet is a random 10.x.y.0/24 that the machine does not route yet,
and every address the test talks to is one of its hosts'. Cutting a host's link sets its switch port down: its
`eth0` loses carrier, as when a cable is pulled, and its connections stall rather than fail.

`destroy` kills whatever still runs in the namespaces and deletes them (their links go with them), also after a
failure; names start with `oe` and a random tag, so two runs on one machine never meet.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field


def why_no_netns() -> str | None:
    """None when this process may make network namespaces; otherwise the reason, for a skip message."""
    if shutil.which("ip") is None:
        return "multi-host test skipped: `ip` (iproute2) is not installed"
    if os.geteuid() != 0:
        return "multi-host test skipped: making network namespaces (`ip netns add`) needs root"
    probe = f"oeprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"multi-host test skipped: `ip netns add` is not permitted here ({made.stderr.strip()})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_subnet() -> str:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    addrs = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if f"{prefix}." not in routes and f"{prefix}." not in addrs:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test hosts")


@dataclass
class Network:
    """Hosts by name; `address(name)` is the host's address, `run(name)` the argv prefix that runs inside it."""

    hosts: list[str]
    tag: str = field(default_factory=lambda: f"oe{uuid.uuid4().hex[:6]}")
    subnet: str = ""
    _made: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.tag}-sw"

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{self.hosts.index(host) + 1}"

    def run(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(host)]

    def _port(self, host: str) -> str:
        return f"{self.tag}p{self.hosts.index(host) + 1}"

    def create(self) -> Network:
        self.subnet = _free_subnet()
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for host in self.hosts:
                ns = self.namespace(host)
                self._add_namespace(ns)
                _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", self._port(host), "netns",
                    self.switch)  # fmt: skip
                self._plug(self._port(host))
                _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
            # The test process's own link; it goes when the switch namespace is deleted.
            _ip("link", "add", f"{self.tag}r", "type", "veth", "peer", "name", f"{self.tag}pr", "netns", self.switch)
            self._plug(f"{self.tag}pr")
            _ip("addr", "add", f"{self.subnet}.254/24", "dev", f"{self.tag}r")
            _ip("link", "set", f"{self.tag}r", "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def _add_namespace(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def _plug(self, port: str) -> None:
        _ip("-n", self.switch, "link", "set", port, "master", "br0")
        _ip("-n", self.switch, "link", "set", port, "up")

    def cut(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self._port(host), "down")

    def restore(self, host: str) -> None:
        _ip("-n", self.switch, "link", "set", self._port(host), "up")

    def destroy(self) -> None:
        for ns in reversed(self._made):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()
        with contextlib.suppress(Exception):
            subprocess.run(["ip", "link", "del", f"{self.tag}r"], capture_output=True)
