"""README's worked example, read from README.md and asked of a real server on a fresh market of the seed it names.

Every figure of its table (each venue's answer with fee and impact, the chosen route and its split, the price per
SOL, `min_amount_out` at 50 bps) must be what `GetQuote` answers, so the README cannot drift from the engine.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import grpc
import pytest

from orderengine.v1 import order_service_pb2 as pb
from orderengine.v1 import order_service_pb2_grpc as pb_grpc
from tests.stack import Stack, Stores

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Worked example"
AMOUNTS = ("1", "10000")  # the table's two columns: 1 SOL and 10,000 SOL
DEX = {"Raydium": pb.DEX_RAYDIUM, "Meteora": pb.DEX_METEORA}
NUMBER = r"([\d,]+(?:\.\d+)?)"


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def example() -> tuple[int, dict[str, list[str]]]:
    """The seed the example names and its table's rows (label -> one cell per column)."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ")]
    seed = re.search(r"MARKET_SEED=(\d+)", section)
    assert seed is not None, "the worked example does not name its MARKET_SEED"
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 1 + len(AMOUNTS) and not set(cells[1]) <= {"-", " "}:
            rows[cells[0]] = cells[1:]
    return int(seed.group(1)), rows


@pytest.fixture(scope="module")
def seeded(stores: Stores) -> Iterator[Stack]:
    seed, _ = example()
    stack = Stack.start(stores, MARKET_SEED=str(seed), MARKET_DRIFT_SECONDS="0")
    yield stack
    stack.stop()


@pytest.fixture
async def stub(seeded: Stack) -> AsyncIterator[pb_grpc.OrderServiceAsyncStub]:
    async with grpc.aio.insecure_channel(seeded.grpc_target) as ch:
        yield pb_grpc.OrderServiceStub(ch)


async def test_the_worked_example_is_what_the_engine_answers(stub: pb_grpc.OrderServiceAsyncStub) -> None:
    _, rows = example()
    labels = {"Raydium alone", "Meteora alone", "chosen route", "price per SOL", "`min_amount_out` at 50 bps"}
    assert labels <= rows.keys(), f"the example's table lost rows: {sorted(labels - rows.keys())}"
    for column, amount in enumerate(AMOUNTS):
        quote = await stub.GetQuote(
            pb.GetQuoteRequest(token_in="SOL", token_out="USDC", amount=amount, slippage_bps=50)
        )
        venues = {q.dex: q for q in quote.quotes}
        for venue, dex in DEX.items():
            cell = rows[f"{venue} alone"][column]
            found = re.fullmatch(NUMBER + r" USDC \(fee (\d+) bps, impact (\d+) bps\)", cell)
            assert found, cell
            q = venues[dex]
            assert (number(found[1]), int(found[2]), int(found[3])) == (
                Decimal(q.amount_out),
                q.fee_bps,
                q.price_impact_bps,
            ), (venue, amount)
        chosen = rows["chosen route"][column]
        assert number(re.match(NUMBER, chosen)[1]) == Decimal(quote.route.amount_out), chosen  # type: ignore[index]
        legs = {(number(n), DEX[v]) for n, v in re.findall(NUMBER + r" SOL on (Raydium|Meteora)", chosen)}
        if legs:  # a split names each leg's SOL; a single venue says "all on ..."
            assert legs == {(Decimal(leg.amount_in), leg.dex) for leg in quote.route.legs}, chosen
        else:
            alone = re.search(r"all on (Raydium|Meteora)", chosen)
            assert alone, chosen
            assert [leg.dex for leg in quote.route.legs] == [DEX[alone[1]]]
        price = (Decimal(quote.route.amount_out) / Decimal(amount)).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        assert number(re.match(NUMBER, rows["price per SOL"][column])[1]) == price  # type: ignore[index]
        assert number(rows["`min_amount_out` at 50 bps"][column]) == Decimal(quote.route.min_amount_out)
