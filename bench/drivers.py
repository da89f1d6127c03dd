"""The ways a client places and watches an order: gRPC (ExecuteOrder + WatchOrder stream) and the bridge
(HTTP POST /api/orders/execute + WebSocket /ws/orders/{id}; gRPC-Web in `grpc_web_driver`). Each yields
(status, seq, commit time) per event."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

import grpc
from websockets.asyncio.client import connect as ws_connect

from client.options import TERMINAL_STATUSES, status_name
from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc

# Small trades in both directions over the deepest pools: the market stays put however many orders run, so no
# order fails its slippage check because thousands of others moved the price first.
ORDER_MIX: tuple[tuple[str, str, str], ...] = (
    ("SOL", "USDC", "0.25"),
    ("USDC", "SOL", "43"),
    ("SOL", "USDT", "0.25"),
    ("USDT", "SOL", "43"),
)
FINAL = frozenset(status_name(s) for s in TERMINAL_STATUSES)
EXECUTE_TIMEOUT_S = 30.0
WATCH_TIMEOUT_S = 180.0


def status_of(status: pb.OrderStatus.ValueType) -> str:
    try:
        return status_name(status)
    except ValueError:  # a status newer than this benchmark
        return "unknown"


Event = tuple[str, int, float]  # status, seq, commit time (Unix seconds)


class Driver(Protocol):
    name: str

    async def execute(self, n: int) -> str: ...

    def watch(self, order_id: str) -> AsyncIterator[Event]: ...

    async def close(self) -> None: ...


class GrpcDriver:
    """A few channels, each its own HTTP/2 connection, shared round-robin by every call."""

    name = "grpc"

    def __init__(
        self, target: str, channels: int = 4, api_key: str | None = None, watch_timeout: float = WATCH_TIMEOUT_S
    ) -> None:
        self._watch_timeout = watch_timeout
        # A local subchannel pool gives each channel its own TCP connection instead of one shared by all.
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
        self._channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
        # The generated stub returns an async stub for an aio channel (the .pyi's OrderServiceAsyncStub).
        self._stubs: list[pb_grpc.OrderServiceAsyncStub] = [pb_grpc.OrderServiceStub(c) for c in self._channels]
        self._next = itertools.cycle(range(channels))
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self._requests = [pb.ExecuteOrderRequest(token_in=a, token_out=b, amount=amt) for a, b, amt in ORDER_MIX]

    def stub(self) -> pb_grpc.OrderServiceAsyncStub:
        return self._stubs[next(self._next)]

    async def execute(self, n: int) -> str:
        request = self._requests[n % len(self._requests)]
        resp = await self.stub().ExecuteOrder(request, timeout=EXECUTE_TIMEOUT_S, metadata=self._metadata)
        return resp.order_id

    async def last_seq(self, order_id: str) -> int:
        """The order's last event's seq as stored."""
        resp = await self.stub().GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30, metadata=self._metadata)
        return resp.order.last_seq

    async def watch(self, order_id: str) -> AsyncIterator[Event]:
        call = self.stub().WatchOrder(
            pb.WatchOrderRequest(order_id=order_id), timeout=self._watch_timeout, metadata=self._metadata
        )
        try:
            async for resp in call:
                ev = resp.event
                yield status_of(ev.status), ev.seq, ev.time.seconds + ev.time.nanos / 1e9
        finally:
            call.cancel()

    async def close(self) -> None:
        for c in self._channels:
            await c.close(None)


class HttpPool:
    """A minimal HTTP/1.1 keep-alive client for loopback JSON POSTs (the bench needs nothing more)."""

    def __init__(self, host: str, port: int, size: int, headers: dict[str, str] | None = None) -> None:
        self._host, self._port = host, port
        self._extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._sem = asyncio.Semaphore(size)
        self._all: list[asyncio.StreamWriter] = []

    async def post_json(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self._sem:
            for _ in range(len(self._idle) + 1):
                reused = bool(self._idle)
                try:
                    return await self._post(path, body)
                except ConnectionError:
                    if not reused:  # a fresh connection failed: the server is gone, not an idle timeout
                        raise
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
            self._all.append(writer)
        try:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{self._extra}\r\n"
            )
            writer.write(head.encode() + body)
            status_line = await reader.readline()
            if not status_line:  # the server closed an idle keep-alive connection
                raise ConnectionResetError("connection closed before the response")
            status = int(status_line.split()[1])
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                key, _, value = line.decode("latin-1").partition(":")
                if key.lower() == "content-length":
                    length = int(value.strip())
                elif key.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            data = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status, data

    async def close(self) -> None:
        for w in self._all:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()


class BridgeDriver:
    """Browser-shaped: POST the order as JSON, then one WebSocket per order until it closes after the final event."""

    name = "bridge"

    def __init__(
        self, port: int, connections: int = 64, api_key: str | None = None, watch_timeout: float = WATCH_TIMEOUT_S
    ) -> None:
        self._watch_timeout = watch_timeout
        self._port = port
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = HttpPool("127.0.0.1", port, connections, self._headers)
        self._bodies = [
            json.dumps({"tokenIn": a, "tokenOut": b, "amount": float(amt)}).encode() for a, b, amt in ORDER_MIX
        ]

    async def execute(self, n: int) -> str:
        status, data = await asyncio.wait_for(
            self._http.post_json("/api/orders/execute", self._bodies[n % len(self._bodies)]), EXECUTE_TIMEOUT_S
        )
        if status != 200:
            raise RuntimeError(f"POST /api/orders/execute -> {status}: {data[:200]!r}")
        order_id: str = json.loads(data)["orderId"]
        return order_id

    async def watch(self, order_id: str) -> AsyncIterator[Event]:
        async with asyncio.timeout(self._watch_timeout):
            url = f"ws://127.0.0.1:{self._port}/ws/orders/{order_id}"
            async with ws_connect(url, open_timeout=30, additional_headers=self._headers) as ws:
                async for message in ws:
                    msg = json.loads(message)
                    yield str(msg.get("status")), int(msg.get("seq") or 0), _iso_seconds(msg.get("timestamp"))

    async def close(self) -> None:
        await self._http.close()


def _iso_seconds(text: object) -> float:
    if not isinstance(text, str):
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
