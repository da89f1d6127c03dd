"""The tokens the mock market trades, with their real mainnet mints and decimals.

Inside the engine an amount is always an integer count of base units (lamports for SOL); `Decimal` appears
only here, where a human amount such as "1.5" enters or leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

import base58

# The most of any token one amount may be, in base units: PostgreSQL's bigint, where orders keep their amounts
# (an SPL token's u64 on chain holds more). One rule for every amount, stated in the error.
MAX_BASE_UNITS = 2**63 - 1

WSOL_MINT = "So11111111111111111111111111111111111111112"


class UnknownTokenError(ValueError):
    """Neither a known symbol nor a known mint."""


class AmountTooLargeError(ValueError):
    """More than MAX_BASE_UNITS base units; the message states the limit in whole tokens."""


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    mint: str
    decimals: int
    # Native SOL is not an SPL token: it trades as wSOL, so a transaction must wrap/unwrap it.
    native: bool = False

    def __str__(self) -> str:
        return self.symbol


SOL = Token("SOL", WSOL_MINT, 9, native=True)
USDC = Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6)
USDT = Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6)
JUP = Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6)
BONK = Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5)
RAY = Token("RAY", "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 6)
JITOSOL = Token("JitoSOL", "J1toso1uCk3RLmjorhTtrVwY9HJ7X8V9yYac6Y7kGCPn", 9)
WIF = Token("WIF", "EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm", 6)

ALL_TOKENS: tuple[Token, ...] = (SOL, USDC, USDT, JUP, BONK, RAY, JITOSOL, WIF)

TOKENS: Mapping[str, Token] = MappingProxyType({t.symbol: t for t in ALL_TOKENS})
_BY_SYMBOL: dict[str, Token] = {t.symbol.upper(): t for t in ALL_TOKENS} | {"WSOL": SOL}
_BY_MINT: dict[str, Token] = {t.mint: t for t in ALL_TOKENS}


def register_token(token: Token) -> None:
    """Lists a launched token (`orderengine market launch`) in this process; the same token again is a no-op."""
    known = _BY_MINT.get(token.mint) or _BY_SYMBOL.get(token.symbol.upper())
    if known is not None and known != token:
        raise ValueError(f"{token.symbol} ({token.mint}) clashes with the listed {known.symbol} ({known.mint})")
    _BY_MINT[token.mint] = token
    _BY_SYMBOL[token.symbol.upper()] = token


def is_mint_address(text: str) -> bool:
    """A Solana address: base58 text that decodes to 32 bytes (what a mint that is not listed yet must be)."""
    try:
        return len(base58.b58decode(text)) == 32 and 32 <= len(text) <= 44
    except ValueError:
        return False


def resolve_token(symbol_or_mint: str) -> Token:
    """A symbol in any case ("sol", "WSOL", "jitosol") or an exact (case-sensitive, base58) mint address."""
    key = symbol_or_mint.strip()
    token = _BY_MINT.get(key) or _BY_SYMBOL.get(key.upper())
    if token is None:
        known = ", ".join(t.symbol for t in ALL_TOKENS)
        raise UnknownTokenError(f"unknown token {symbol_or_mint!r}: use a symbol ({known}) or its mint address")
    return token


def to_base_units(amount: Decimal, token: Token) -> int:
    """Exact conversion; refuses what the token cannot represent rather than rounding the user's money."""
    if not amount.is_finite():
        raise ValueError(f"amount {amount} is not a finite number")
    if amount < 0:
        raise ValueError(f"amount {amount} must not be negative")
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent + token.decimals
    if coefficient and len(digits) + shift > len(str(MAX_BASE_UNITS)):
        raise _too_large(amount, token)
    if shift >= 0:
        units = coefficient * 10**shift
    else:
        units, rest = divmod(coefficient, 10**-shift)
        if rest:
            raise ValueError(
                f"amount {amount} has too many decimal places: {token.symbol} allows at most {token.decimals}"
            )
    if units > MAX_BASE_UNITS:
        raise _too_large(amount, token)
    return int(units)


def max_amount(token: Token) -> str:
    """The largest amount of `token` the engine accepts, in whole tokens."""
    return format_amount(MAX_BASE_UNITS, token)


def _too_large(amount: Decimal, token: Token) -> AmountTooLargeError:
    return AmountTooLargeError(
        f"{amount:f} {token.symbol} is too large: an amount of {token.symbol} may be at most "
        f"{max_amount(token)} {token.symbol} (2^63-1 base units, the largest an order can hold)"
    )


def to_decimal(base_units: int, token: Token) -> Decimal:
    # Built from text, which is exact at any size (arithmetic would round to the context's 28 digits).
    return Decimal(f"{base_units}E-{token.decimals}")


def format_amount(base_units: int, token: Token) -> str:
    """Plain decimal text without exponent or trailing zeros: "1.5", "0.000001", "150"."""
    whole, frac = divmod(abs(base_units), 10**token.decimals)
    sign = "-" if base_units < 0 else ""
    frac_text = str(frac).rjust(token.decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}" if frac_text else f"{sign}{whole}"
