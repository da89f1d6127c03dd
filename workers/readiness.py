"""Tells a supervisor that this process now serves, the way systemd's Type=notify services do: a "READY=1"
datagram to the Unix socket named by $NOTIFY_SOCKET. `orderengine dev` waits for every part's before it prints
its banner; without $NOTIFY_SOCKET this does nothing."""

from __future__ import annotations

import contextlib
import os
import socket

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def notify_ready(part: str) -> None:
    """Says "READY=1", with `part` (serve, worker, bridge) and this pid as the status line."""
    address = os.environ.get(NOTIFY_SOCKET)
    if not address:
        return
    if address.startswith("@"):  # Linux abstract namespace
        address = "\0" + address[1:]
    message = f"READY=1\nSTATUS={part} ready\nPART={part}\nPID={os.getpid()}".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(message, address)
