"""The page's live charts in headless Chromium, fed by every process's /metrics through the bridge.

Set CHARTS_SCREENSHOT=docs/charts.png to refresh the README's picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from playwright.async_api import Browser, async_playwright

from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.helpers import execute
from tests.integration.bridge_harness import ahttp
from tests.integration.browser import CHROMIUM_ARGS, need_chromium
from tests.integration.observed_stack import Observed, start_observed
from tests.integration.test_page import STAGE_TIMEOUT_MS
from tests.stack import Stores

CHARTS = ("throughput", "latency", "stages", "failures", "prices")


@pytest.fixture(scope="module")
def observed(stores: Stores) -> Iterator[Observed]:
    o = start_observed(stores)
    yield o
    o.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = need_chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        await b.close()


async def _keep_ordering(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.OrderServiceStub(ch)
        i = 0
        while True:
            pair = ("SOL", "USDC", "0.5") if i % 2 == 0 else ("USDC", "SOL", "80")
            await asyncio.gather(*(execute(stub, *pair) for _ in range(4)))
            i += 1


def _series(name: str, series: str) -> str:
    return f'document.querySelector(\'[data-chart="{name}"] path[data-series="{series}"]\')'


async def test_charts_draw_and_move_while_orders_run(browser: Browser, observed: Observed) -> None:
    summary = (await ahttp("GET", f"{observed.http}/api/metrics")).json()
    assert summary["targets"] == 4 and summary["unreachable"] == []
    errors: list[str] = []
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(observed.http)
    await page.wait_for_selector('#system[data-state="ok"]', timeout=STAGE_TIMEOUT_MS)
    orders = asyncio.create_task(_keep_ordering(observed.stack.grpc_target))
    try:
        # Throughput rises above zero once orders settle: the line is drawn and its last point is off the floor.
        confirmed = _series("throughput", "confirmed")
        await page.wait_for_function(
            f"{confirmed} && !{confirmed}.getAttribute('d').trim().endsWith(',100.0')", timeout=STAGE_TIMEOUT_MS
        )
        before = await page.evaluate(f"{confirmed}.getAttribute('d')")
        draws = int(await page.get_attribute('[data-chart="throughput"]', "data-draws") or 0)
        # ... and moves: later samples redraw it differently.
        await page.wait_for_function(
            f"{confirmed}.getAttribute('d') !== {before!r} && "
            f"+document.querySelector('[data-chart=\"throughput\"]').dataset.draws > {draws + 2}",
            timeout=STAGE_TIMEOUT_MS,
        )
        await page.wait_for_function(f"{_series('latency', 'p50')} !== null", timeout=STAGE_TIMEOUT_MS)
        await page.wait_for_function(
            "document.querySelectorAll('[data-chart=\"prices\"] path.series').length >= 2", timeout=STAGE_TIMEOUT_MS
        )
        for name in CHARTS:
            assert await page.locator(f'[data-chart="{name}"] svg').count() == 1
        stages = await page.locator('[data-chart="stages"] .chart-legend span').all_inner_texts()
        assert {s.split()[0] for s in stages} >= {"pending", "routing", "building", "submitted"}
        if path := os.environ.get("CHARTS_SCREENSHOT"):
            await page.wait_for_function(
                "+document.querySelector('[data-chart=\"throughput\"]').dataset.draws > 40", timeout=60_000
            )
            await page.screenshot(path=path)
    finally:
        orders.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await orders
    assert errors == []
