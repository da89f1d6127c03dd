"""`serve --processes 2`: an order placed through one server process is watched through the other.

The processes share a port (SO_REUSEPORT) and nothing else but Redis and PostgreSQL. The test opens connections
until the kernel has given it one to each process, telling them apart by the sockets each process holds
(/proc), then places an order over the first and watches it to the end over the second.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import LIFECYCLE, assert_gap_free, statuses
from tests.stack import Stack, Stores

ESTABLISHED = "01"
MAX_CONNECTIONS = 200


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def client_ports(pid: int, server_port: int) -> set[int]:
    """Client ports of the established TCP connections to `server_port` whose socket `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
            if state == ESTABLISHED and inode in inodes and int(local.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(remote.rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture(scope="module")
def two_servers(stores: Stores) -> Iterator[tuple[Stack, list[int]]]:
    stack = Stack.start(stores, MARKET_LATENCY="realistic", MARKET_DRIFT_SECONDS="0")
    single = stack.processes.pop("serve")
    single.terminate()
    single.wait()
    supervisor = stack.spawn("serve-2", "serve", "--processes", "2")  # the same GRPC_PORT
    stack.wait_serving()
    yield stack, [supervisor.pid]
    stack.stop()


def _connect_to_each(target: str, pids: list[int], port: int) -> dict[int, grpc.Channel]:
    """One channel per server process: new connections until the kernel has spread them over both."""
    channels: dict[int, grpc.Channel] = {}
    spare: list[grpc.Channel] = []
    for _ in range(MAX_CONNECTIONS):
        before = {pid: client_ports(pid, port) for pid in pids}
        # A subchannel pool of its own: a new TCP connection, not one shared with the channels before it.
        ch = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        pb_grpc.OrderServiceStub(ch).ListOrders(pb.ListOrdersRequest(page_size=1), wait_for_ready=True, timeout=30)
        owner = [pid for pid in pids if client_ports(pid, port) - before[pid]]
        if len(owner) == 1 and owner[0] not in channels:
            channels[owner[0]] = ch
            if len(channels) == len(pids):
                break
        else:
            spare.append(ch)
    for ch in spare:
        ch.close()
    return channels


def test_an_order_placed_through_one_process_is_watched_through_the_other(
    two_servers: tuple[Stack, list[int]],
) -> None:
    stack, (supervisor,) = two_servers
    port = int(stack.grpc_target.rsplit(":", 1)[1])
    servers = children(supervisor)
    assert len(servers) == 2, servers
    channels = _connect_to_each(stack.grpc_target, servers, port)
    assert len(channels) == 2, f"the kernel put {MAX_CONNECTIONS} connections on one process"
    placing, watching = (pb_grpc.OrderServiceStub(channels[pid]) for pid in servers)
    try:
        order_id = placing.ExecuteOrder(
            pb.ExecuteOrderRequest(token_in="SOL", token_out="USDC", amount="1"), timeout=10
        ).order_id
        events = [r.event for r in watching.WatchOrder(pb.WatchOrderRequest(order_id=order_id), timeout=60)]
        # Each channel still rides its own process's connection: the answers came from two processes.
        assert all(client_ports(pid, port) for pid in servers)
    finally:
        for ch in channels.values():
            ch.close()
    assert statuses(events) == LIFECYCLE
    assert_gap_free(events)
