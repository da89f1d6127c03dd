from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.market.tokens import (
    ALL_TOKENS,
    BONK,
    SOL,
    USDC,
    USDT,
    WSOL_MINT,
    AmountTooLargeError,
    UnknownTokenError,
    format_amount,
    max_amount,
    resolve_token,
    to_base_units,
    to_decimal,
)


def test_real_mints_and_decimals():
    assert SOL.mint == WSOL_MINT == "So11111111111111111111111111111111111111112"
    assert SOL.decimals == 9 and SOL.native
    assert USDC.mint == "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v" and USDC.decimals == 6
    assert USDT.mint == "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB" and USDT.decimals == 6
    assert BONK.decimals == 5
    assert len(ALL_TOKENS) >= 6
    assert len({t.mint for t in ALL_TOKENS}) == len(ALL_TOKENS)
    assert [t for t in ALL_TOKENS if t.native] == [SOL]


@pytest.mark.parametrize("text", ["SOL", "sol", "Sol", " SOL ", "WSOL", "wsol", WSOL_MINT])
def test_resolve_sol(text):
    assert resolve_token(text) is SOL


def test_resolve_every_token_by_symbol_and_mint():
    for token in ALL_TOKENS:
        assert resolve_token(token.symbol) is token
        assert resolve_token(token.symbol.lower()) is token
        assert resolve_token(token.mint) is token


@pytest.mark.parametrize("text", ["", "DOGE", "So11111111111111111111111111111111111111113", WSOL_MINT.lower()])
def test_unknown_token_names_the_input(text):
    with pytest.raises(UnknownTokenError) as info:
        resolve_token(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_to_base_units():
    assert to_base_units(Decimal("1.5"), SOL) == 1_500_000_000
    assert to_base_units(Decimal("0.000001"), USDC) == 1
    assert to_base_units(Decimal("1.500000"), USDC) == 1_500_000
    assert to_base_units(Decimal("1E+3"), USDC) == 1_000_000_000
    assert to_base_units(Decimal("0"), SOL) == 0
    assert to_base_units(Decimal("0.00001"), BONK) == 1


@pytest.mark.parametrize(
    ("amount", "token", "allowed"),
    [("0.0000001", USDC, "6"), ("1.0000000001", SOL, "9"), ("0.000001", BONK, "5")],
)
def test_too_many_decimals_says_how_many_are_allowed(amount, token, allowed):
    with pytest.raises(ValueError, match=f"at most {allowed}"):
        to_base_units(Decimal(amount), token)


@pytest.mark.parametrize("amount", ["-1", "NaN", "Infinity", "1E+30", "9223372036.854775808", "18000000000"])
def test_refuses_what_an_order_cannot_hold(amount):
    with pytest.raises(ValueError):
        to_base_units(Decimal(amount), SOL)


def test_the_largest_amount_is_accepted_and_the_next_is_refused_naming_it():
    assert to_base_units(Decimal("9223372036.854775807"), SOL) == 2**63 - 1
    assert max_amount(SOL) == "9223372036.854775807"
    for amount in ("9223372036.854775808", "1" + "0" * 30):
        with pytest.raises(AmountTooLargeError, match=r"at most 9223372036\.854775807 SOL"):
            to_base_units(Decimal(amount), SOL)


def test_format_amount():
    assert format_amount(1_500_000_000, SOL) == "1.5"
    assert format_amount(1, USDC) == "0.000001"
    assert format_amount(150_000_000, USDC) == "150"
    assert format_amount(0, SOL) == "0"
    assert to_decimal(1_500_000_000, SOL) == Decimal("1.5")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=2**63 - 1), st.sampled_from(ALL_TOKENS))
def test_round_trip(units, token):
    text = format_amount(units, token)
    assert "E" not in text and "e" not in text
    assert to_base_units(Decimal(text), token) == units
    assert to_base_units(to_decimal(units, token), token) == units
