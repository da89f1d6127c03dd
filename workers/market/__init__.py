"""The mock market: tokens, Raydium CPMM and Meteora DLMM pools, routing. Pure and synchronous."""

from workers.market.codec import pool_from_json
from workers.market.genesis import genesis_pools
from workers.market.meteora import DlmmPool
from workers.market.pool import DEXES, Dex, InsufficientLiquidityError, Pool, SwapResult
from workers.market.raydium import CpmmPool
from workers.market.routing import (
    Execution,
    Leg,
    NoRouteError,
    Route,
    VenueQuote,
    VenueShortfall,
    best_route,
    execute,
    route_from_json,
    venue_quotes,
    venue_quotes_and_shortfalls,
)
from workers.market.tokens import (
    ALL_TOKENS,
    SOL,
    TOKENS,
    USDC,
    USDT,
    WSOL_MINT,
    AmountTooLargeError,
    Token,
    UnknownTokenError,
    format_amount,
    max_amount,
    resolve_token,
    to_base_units,
    to_decimal,
)

__all__ = [
    "ALL_TOKENS",
    "DEXES",
    "SOL",
    "TOKENS",
    "USDC",
    "USDT",
    "WSOL_MINT",
    "AmountTooLargeError",
    "CpmmPool",
    "Dex",
    "DlmmPool",
    "Execution",
    "InsufficientLiquidityError",
    "Leg",
    "NoRouteError",
    "Pool",
    "Route",
    "SwapResult",
    "Token",
    "UnknownTokenError",
    "VenueQuote",
    "VenueShortfall",
    "best_route",
    "execute",
    "format_amount",
    "genesis_pools",
    "max_amount",
    "pool_from_json",
    "resolve_token",
    "route_from_json",
    "to_base_units",
    "to_decimal",
    "venue_quotes",
    "venue_quotes_and_shortfalls",
]
