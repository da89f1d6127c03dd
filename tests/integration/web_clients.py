"""gRPC-Web clients nobody on the team wrote, driven from the tests: connect-web and Google's grpc-web in headless
Chromium, connect-node in Node. tests/integration/web/driver.ts turns JSON commands into their calls; both ends
speak one JSON message per outcome, so a test reads the same whichever client runs it.

The TypeScript is bundled by esbuild at test time from client/web's npm packages (`make web-deps` installs them
from the registry, once per checkout), after generating the typed code from the .proto.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from playwright.async_api import Browser, Page

from tests.integration.browser import missing
from tests.stack import ROOT

WEB = ROOT / "client" / "web"
SOURCES = Path(__file__).parent / "web"
BIN = WEB / "node_modules" / ".bin"
REPLY_TIMEOUT_S = 30.0

PAGE_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>loading</title>
<script type="module" src="page.js"></script></head><body></body></html>"""


@dataclass(frozen=True)
class Bundles:
    folder: Path

    @property
    def node_client(self) -> Path:
        return self.folder / "node_client.mjs"


def need_npm_packages() -> None:
    if shutil.which("node") is None:
        missing("node is not installed: the gRPC-Web tests run npm packages (apt-get install -y nodejs npm)")
    if not (BIN / "esbuild").exists():
        missing(f"npm packages missing in {WEB.relative_to(ROOT)}: run `make web-deps` (npm ci from the registry)")


def link_packages() -> None:
    """tests/integration/web/node_modules -> client/web's, so the tests' TypeScript resolves the same packages."""
    link = SOURCES / "node_modules"
    if not link.exists():
        link.unlink(missing_ok=True)  # a dangling link
        link.symlink_to(Path("..", "..", "..", "client", "web", "node_modules"), target_is_directory=True)


def build_bundles(folder: Path) -> Bundles:
    """Generates the typed code from the .proto, then bundles the test page and the Node client."""
    need_npm_packages()
    link_packages()
    run = functools.partial(subprocess.run, cwd=ROOT, check=True, capture_output=True, text=True)
    try:
        run(["npm", "run", "--silent", "generate"], cwd=WEB)
        common = ["--bundle", "--format=esm", "--log-level=warning"]
        run([BIN / "esbuild", SOURCES / "browser_client.ts", *common, f"--outfile={folder / 'page.js'}"])
        node = ["--platform=node", "--target=node20"]
        run([BIN / "esbuild", SOURCES / "node_client.ts", *common, *node, f"--outfile={folder / 'node_client.mjs'}"])
    except subprocess.CalledProcessError as e:
        raise AssertionError(f"{e.cmd} failed:\n{e.stdout}\n{e.stderr}") from None
    (folder / "index.html").write_text(PAGE_HTML)
    return Bundles(folder)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """The page's own origin (`http://localhost:<port>`), another origin than the bridge's: CORS applies."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="page-origin", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class CallFailed(Exception):
    """The call ended with a non-OK status, as the client library reported it."""

    def __init__(self, failure: dict[str, Any]) -> None:
        self.code = grpc.StatusCode.UNKNOWN
        for code in grpc.StatusCode:
            if code.value[0] == failure["code"]:
                self.code = code
        self.message: str = failure["message"]
        self.details: list[dict[str, str]] = failure.get("details", [])
        super().__init__(f"{self.code.name}: {self.message}")


@dataclass
class Stream:
    """A WatchOrder call in progress in the client."""

    client: WebClient
    id: int
    ended: bool = False

    async def next(self) -> dict[str, Any] | None:
        """The next WatchOrderResponse (JSON), None once the stream has ended with OK; raises CallFailed."""
        output = await self.client.reply(self.id)
        if "error" in output:
            self.ended = True
            raise CallFailed(output["error"])
        if output.get("end"):
            self.ended = True
            return None
        event: dict[str, Any] = output["event"]["event"]
        return event

    async def rest(self) -> list[dict[str, Any]]:
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
        return events

    async def abort(self) -> None:
        await self.client.command({"op": "abort", "target": self.id})


@dataclass
class WebClient:
    """Sends driver.ts commands and sorts the replies by command id; `send` is the client's own channel."""

    name: str
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _replies: dict[int, asyncio.Queue[dict[str, Any]]] = field(default_factory=dict)

    def receive(self, output: dict[str, Any]) -> None:
        self._replies.setdefault(output["id"], asyncio.Queue()).put_nowait(output)

    async def reply(self, command_id: int) -> dict[str, Any]:
        queue = self._replies.setdefault(command_id, asyncio.Queue())
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            return await queue.get()

    async def send(self, command: dict[str, Any]) -> None:
        raise NotImplementedError

    async def command(self, command: dict[str, Any]) -> int:
        command_id = next(self._ids)
        await self.send({**command, "id": command_id})
        return command_id

    async def call(
        self,
        method: str,
        request: dict[str, Any],
        *,
        timeout_ms: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One unary call; its response as proto3 JSON, or CallFailed."""
        command = {"op": "call", "method": method, "request": request, "timeoutMs": timeout_ms, "headers": headers}
        output = await self.reply(await self.command(command))
        if "error" in output:
            raise CallFailed(output["error"])
        result: dict[str, Any] = output["result"]
        return result

    async def watch(self, order_id: str, *, from_seq: int = 0, timeout_ms: int | None = None) -> Stream:
        request = {"orderId": order_id, "fromSeq": str(from_seq)}
        return Stream(self, await self.command({"op": "watch", "request": request, "timeoutMs": timeout_ms}))


class NodeClient(WebClient):
    """connect-node's gRPC-Web transport in a `node` process: commands on stdin, replies on stdout."""

    process: asyncio.subprocess.Process
    _reader: asyncio.Task[None]

    @classmethod
    async def start(cls, bundles: Bundles, bridge_url: str) -> NodeClient:
        client = cls(name="node")
        client.process = await asyncio.create_subprocess_exec(
            "node", str(bundles.node_client), bridge_url, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.receive(json.loads(line))

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class BrowserClient(WebClient):
    """A page of the test origin in Chromium: `drive` takes commands, the exposed `emit` brings replies back."""

    page: Page

    @classmethod
    async def open(cls, browser: Browser, origin: str, bridge_url: str, library: str) -> BrowserClient:
        client = cls(name=f"chromium-{library}")
        client.page = await browser.new_page()
        await client.page.expose_function("emit", client.receive)
        await client.page.goto(f"{origin}/index.html?bridge={bridge_url}&client={library}")
        await client.page.wait_for_function("document.title === 'ready'")
        return client

    async def send(self, command: dict[str, Any]) -> None:
        await self.page.evaluate("command => window.drive(command)", command)

    async def close(self) -> None:
        await self.page.close()
