"""The bridge's web page in headless Chromium (Debian's package, driven by Playwright; nothing is downloaded).

Set PAGE_SCREENSHOT=docs/page.png to refresh the README's screenshot from the realistic-latency run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from orderengine.v1 import order_service_pb2 as pb
from tests.integration.bridge_harness import BridgeThread
from tests.integration.browser import CHROMIUM_ARGS, need_chromium
from tests.stack import Stack, Stores

STAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    executable = need_chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture(scope="module")
def bridge(stack: Stack) -> Iterator[BridgeThread]:
    b = BridgeThread(stack.grpc_target).start().wait_healthy()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def slow_bridge(stores: Stores) -> Iterator[BridgeThread]:
    """A bridge on a system with realistic latency: orders take seconds, so the page can watch them move. Its
    market is the one `make run` starts with (MARKET_SEED 42), so the README's screenshot shows what users see."""
    slow = Stack.start(stores, MARKET_LATENCY="realistic", MARKET_SEED="42")
    b = BridgeThread(slow.grpc_target).start().wait_healthy()
    yield b
    b.stop()
    slow.stop()


async def open_page(browser: Browser, url: str, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await page.wait_for_selector('#health[data-state="ok"]', timeout=STAGE_TIMEOUT_MS)
    return page


async def place(page: Page, token_in: str, token_out: str, amount: str) -> str:
    """Fills the ticket, places the order and returns the id of the timeline card it opened."""
    before = await page.locator(".timeline").count()
    await page.select_option("#token-in", token_in)
    await page.select_option("#token-out", token_out)
    await page.fill("#amount", amount)
    await page.click("#place")
    await page.wait_for_function(f"document.querySelectorAll('.timeline').length > {before}")
    order_id = await page.locator(".timeline").first.get_attribute("data-order-id")
    assert order_id
    return order_id


async def test_place_an_order_and_watch_it_confirm(browser: Browser, bridge: BridgeThread) -> None:
    errors: list[str] = []
    page = await open_page(browser, bridge.http, errors)
    assert await page.title() == "Order Engine · Desk"
    assert await page.locator("#token-in option").all_inner_texts() == ["SOL", "USDC", "USDT", "JUP", "BONK", "RAY"]
    await page.wait_for_selector("#quote[data-state=ok] #quote-venues tbody tr", timeout=STAGE_TIMEOUT_MS)

    order_id = await place(page, "SOL", "USDC", "1.5")
    card = page.locator(f'.timeline[data-order-id="{order_id}"]')
    await card.and_(page.locator('[data-status="confirmed"]')).wait_for(timeout=STAGE_TIMEOUT_MS)
    assert await card.locator("tr.ev td.seq").all_inner_texts() == ["#1", "#2", "#3", "#4", "#5"]
    statuses = await card.locator("tr.ev .badge").all_inner_texts()
    assert [s.lower() for s in statuses] == ["pending", "routing", "building", "submitted", "confirmed"]
    summary = await card.locator(".summary").inner_text()
    for label in ("route", "price", "received", "signature"):
        assert label in summary

    # the blotter (GET /api/orders) lists it once it is final
    row = page.locator(f'#orders tr[data-order-id="{order_id}"][data-status="confirmed"]')
    await row.wait_for(timeout=STAGE_TIMEOUT_MS)
    assert errors == []


async def test_bad_amount_is_shown_on_the_field(browser: Browser, bridge: BridgeThread) -> None:
    errors: list[str] = []
    page = await open_page(browser, bridge.http, errors)
    await page.fill("#amount", "abc")
    await page.click("#place")
    await page.wait_for_selector("#amount.invalid", timeout=STAGE_TIMEOUT_MS)
    assert "amount" in await page.locator("#ticket-error").inner_text()
    assert await page.locator(".timeline").count() == 0


async def test_timeline_resumes_with_from_seq_after_the_socket_drops(
    browser: Browser, slow_bridge: BridgeThread
) -> None:
    errors: list[str] = []
    page = await open_page(browser, slow_bridge.http, errors)
    socket_urls: list[str] = []
    page.on("websocket", lambda ws: socket_urls.append(ws.url))

    order_id = await place(page, "SOL", "USDC", "2")
    card = page.locator(f'.timeline[data-order-id="{order_id}"]')
    # confirmation takes 2-3 s of slots after submission: drop the socket in that window
    await card.and_(page.locator('[data-status="submitted"]')).wait_for(timeout=STAGE_TIMEOUT_MS)
    await page.evaluate(f"window.desk.timelines.get('{order_id}').stream.drop()")
    await card.and_(page.locator('[data-status="confirmed"]')).wait_for(timeout=STAGE_TIMEOUT_MS)

    assert await card.locator("tr.ev td.seq").all_inner_texts() == ["#1", "#2", "#3", "#4", "#5"]
    assert socket_urls[0].endswith(f"/ws/orders/{order_id}?fromSeq=0")
    assert socket_urls[1].endswith(f"/ws/orders/{order_id}?fromSeq=4")
    assert errors == []

    if target := os.environ.get("PAGE_SCREENSHOT"):
        more = [("BONK", "JUP", "1000000"), ("USDC", "SOL", "250"), ("SOL", "USDC", "1000")]
        for token_in, token_out, amount in more:
            await place(page, token_in, token_out, amount)
        await page.wait_for_function(
            "document.querySelectorAll('.timeline[data-status=confirmed]').length >= 3", timeout=STAGE_TIMEOUT_MS
        )
        await page.fill("#amount", "10")
        await page.wait_for_selector('#quote[data-state=ok][data-amount="10"]')
        await page.screenshot(path=target)


async def test_a_limit_order_rests_shows_in_open_orders_and_cancels(browser: Browser, bridge: BridgeThread) -> None:
    errors: list[str] = []
    page = await open_page(browser, bridge.http, errors)
    await page.click('#order-type button[data-type="limit"]')
    assert (await page.locator("#ticket-title").inner_text()).lower() == "limit order"  # CSS upper-cases it
    await page.fill("#limit-price", "1000000")
    await page.select_option("#expires", "1h")
    order_id = await place(page, "SOL", "USDC", "0.5")
    card = page.locator(f'.timeline[data-order-id="{order_id}"]')
    await card.and_(page.locator('[data-status="open"]')).wait_for(timeout=STAGE_TIMEOUT_MS)

    await page.click('#status-filter button[data-status="open"]')
    row = page.locator(f'#orders tr[data-order-id="{order_id}"][data-status="open"]')
    await row.wait_for(timeout=STAGE_TIMEOUT_MS)
    assert "limit @ 1000000" in (await row.locator("td.type").inner_text()).replace(",", "")
    await row.locator("button.cancel").click()
    await card.and_(page.locator('[data-status="cancelled"]')).wait_for(timeout=STAGE_TIMEOUT_MS)
    assert [s.lower() for s in await card.locator("tr.ev .badge").all_inner_texts()] == ["pending", "open", "cancelled"]
    assert errors == []


@pytest.fixture(scope="module")
def keyed(stores: Stores) -> Iterator[tuple[BridgeThread, str]]:
    """A system that requires keys (AUTH=required in the service and the bridge), and one account's key."""
    from client import OrderClient
    from tests.integration.accounts_harness import create_account

    system = Stack.start(stores, AUTH="required")
    b = BridgeThread(system.grpc_target, auth_required=True).start()
    try:
        api_key = create_account(system, "page-user").api_key
        # Stack.start waits for the server only: one order followed to its end shows the worker consuming too.
        with OrderClient(system.grpc_target, api_key=api_key) as client:
            assert list(client.watch(client.execute("SOL", "USDC", "0.1")))[-1].status == pb.ORDER_STATUS_CONFIRMED
        yield b, api_key
    finally:
        b.stop()
        system.stop()


async def test_the_key_field_keeps_the_key_and_sends_it(browser: Browser, keyed: tuple[BridgeThread, str]) -> None:
    bridge, api_key = keyed
    errors: list[str] = []
    page = await open_page(browser, bridge.http, errors)
    socket_urls: list[str] = []
    page.on("websocket", lambda ws: socket_urls.append(ws.url))

    await page.fill("#amount", "1")
    await page.click("#place")  # no key yet: refused, and the key field says where to look
    await page.wait_for_selector("#api-key.invalid", timeout=STAGE_TIMEOUT_MS)
    # The field is marked before the error text is written: wait for the text too (CI once read it empty between).
    await page.locator("#ticket-error", has_text="API key").wait_for(timeout=STAGE_TIMEOUT_MS)
    assert "API key" in await page.locator("#ticket-error").inner_text()
    assert await page.locator(".timeline").count() == 0

    await page.fill("#api-key", api_key)
    await page.dispatch_event("#api-key", "change")
    await page.wait_for_selector("#api-key:not(.invalid)", timeout=STAGE_TIMEOUT_MS)
    order_id = await place(page, "SOL", "USDC", "1")
    card = page.locator(f'.timeline[data-order-id="{order_id}"]')
    await card.and_(page.locator('[data-status="confirmed"]')).wait_for(timeout=STAGE_TIMEOUT_MS)
    assert any(url.endswith(f"access_token={api_key}") for url in socket_urls), socket_urls
    await page.locator(f'#orders tr[data-order-id="{order_id}"]').wait_for(timeout=STAGE_TIMEOUT_MS)

    stored = await page.evaluate("localStorage.getItem('orderengine.apiKey')")
    assert stored == api_key
    await page.reload()
    await page.wait_for_selector('#health[data-state="ok"]', timeout=STAGE_TIMEOUT_MS)
    assert await page.locator("#api-key").input_value() == api_key  # kept across reloads
