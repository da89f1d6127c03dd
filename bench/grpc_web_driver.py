"""The bridge's gRPC-Web, called as a browser's typed client calls it: ExecuteOrder and one WatchOrder stream per
order, each a POST of one binary frame (`application/grpc-web+proto`) over HTTP/1.1, the answer read frame by
frame from the chunked body as it arrives. Yields the same (status, seq, commit time) events as the other drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bench.drivers import EXECUTE_TIMEOUT_S, ORDER_MIX, WATCH_TIMEOUT_S, Event, status_of
from orderengine.v1 import order_service_pb2 as pb
from server.bridge import grpc_web_wire as wire

SERVICE_PATH = "/orderengine.v1.OrderService/"
UNAVAILABLE = 14
MAX_RETRIES = 5


class GrpcWebError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Connection:
    """One HTTP/1.1 keep-alive connection to the bridge, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extra: str = "") -> None:
        self.reader, self.writer = reader, writer
        self.reusable = True
        self.extra = extra  # more header lines, e.g. the API key

    @classmethod
    async def open(cls, port: int, extra: str = "") -> _Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port), extra)

    async def post(self, method: str, message: bytes) -> AsyncIterator[bytes]:
        """POSTs one framed message; yields the response body's chunks as they arrive."""
        body = wire.frame(message)
        self.writer.write(
            (
                f"POST {SERVICE_PATH}{method} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {wire.BINARY_TYPE}\r\n"
                f"X-Grpc-Web: 1\r\nContent-Length: {len(body)}\r\n{self.extra}\r\n"
            ).encode()
            + body
        )
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("connection closed before the response")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if status != 200:
            raise GrpcWebError(f"HTTP {status} for {method}")
        self.reusable = headers.get("connection", "").lower() != "close"
        if "grpc-status" in headers:  # trailers-only
            why = f"{method}: grpc-status {headers['grpc-status']} {headers.get('grpc-message', '')}"
            raise GrpcWebError(why, int(headers["grpc-status"]))  # the caller closes the connection
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                yield await self.reader.readexactly(size)
                await self.reader.readexactly(2)
            while await self.reader.readline() not in (b"\r\n", b""):
                pass
        else:
            yield await self.reader.readexactly(int(headers.get("content-length", "0")))

    def close(self) -> None:
        self.writer.close()


async def _messages(chunks: AsyncIterator[bytes], method: str) -> AsyncIterator[bytes]:
    """The response's messages, each as soon as its frame is complete; raises on a non-OK trailer. Reads the body
    to its end, so a keep-alive connection is ready for the next request."""
    buffer, trailer = b"", None
    async for chunk in chunks:
        buffer += chunk
        while trailer is None and len(buffer) >= 5:
            length = int.from_bytes(buffer[1:5], "big")
            if len(buffer) < 5 + length:
                break
            flags, payload, buffer = buffer[0], buffer[5 : 5 + length], buffer[5 + length :]
            if flags & wire.TRAILERS:
                trailer = payload
            else:
                yield payload
    if trailer is None:
        raise GrpcWebError(f"{method}: the response ended without trailers")
    if b"grpc-status: 0\r\n" not in trailer:
        raise GrpcWebError(f"{method}: {trailer.decode(errors='replace').strip()}", _status(trailer))


def _status(trailer: bytes) -> int:
    for line in trailer.split(b"\r\n"):
        if line.startswith(b"grpc-status:"):
            return int(line.split(b":")[1])
    return 2


class GrpcWebDriver:
    name = "grpc-web"

    def __init__(
        self, port: int, connections: int = 64, watch_timeout: float = WATCH_TIMEOUT_S, api_key: str | None = None
    ) -> None:
        self._watch_timeout = watch_timeout
        self._extra = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self._port = port
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)
        self._requests = [
            pb.ExecuteOrderRequest(token_in=a, token_out=b, amount=amt, order_type=pb.ORDER_TYPE_MARKET)
            for a, b, amt in ORDER_MIX
        ]

    async def _connection(self) -> tuple[_Connection, bool]:
        """An idle keep-alive connection (True: reused), else a new one."""
        if self._idle:
            return self._idle.pop(), True
        connection = await _Connection.open(self._port, self._extra)
        self._all.append(connection)
        return connection, False

    async def execute(self, n: int) -> str:
        request = self._requests[n % len(self._requests)].SerializeToString()
        async with self._slots, asyncio.timeout(EXECUTE_TIMEOUT_S):
            while True:
                connection, reused = await self._connection()
                try:
                    messages = [m async for m in _messages(connection.post("ExecuteOrder", request), "ExecuteOrder")]
                    break
                except ConnectionError:
                    connection.close()
                    if not reused:
                        raise
                    # the bridge closed it while idle (keep-alive timeout): a browser retries on a new one too
                except BaseException:
                    connection.close()
                    raise
            if connection.reusable:
                self._idle.append(connection)
            else:
                connection.close()
        return pb.ExecuteOrderResponse.FromString(messages[0]).order_id

    async def watch(self, order_id: str) -> AsyncIterator[Event]:
        """The order's events; a stream ended with UNAVAILABLE is reopened from the last seq, as client/web does."""
        last_seq, retries = 0, 0
        async with asyncio.timeout(self._watch_timeout):
            while True:
                request = pb.WatchOrderRequest(order_id=order_id, from_seq=last_seq).SerializeToString()
                connection = await _Connection.open(
                    self._port, self._extra
                )  # a stream holds its connection, as in a browser
                try:
                    async for message in _messages(connection.post("WatchOrder", request), "WatchOrder"):
                        ev = pb.WatchOrderResponse.FromString(message).event
                        last_seq, retries = ev.seq, 0
                        yield status_of(ev.status), ev.seq, ev.time.seconds + ev.time.nanos / 1e9
                    return
                except GrpcWebError as e:
                    if e.code != UNAVAILABLE or retries >= MAX_RETRIES:
                        raise
                    retries += 1
                finally:
                    connection.close()
                await asyncio.sleep(0.2 * 2**retries)

    async def close(self) -> None:
        for connection in self._all:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.writer.wait_closed()
