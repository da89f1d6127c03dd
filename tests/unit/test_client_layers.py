"""The import rules of DESIGN.md for the client side, and orderctl's pure display helpers."""

from __future__ import annotations

import ast
from pathlib import Path

from client.display import route_text, short, table
from orderengine.v1 import order_service_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_client_depends_on_grpc_and_the_stubs_only() -> None:
    for path, names in imported_modules(ROOT / "client").items():
        bad = {n for n in names if n.split(".")[0] in {"server", "workers"}}
        assert not bad, f"{path} imports {bad}"


def test_bridge_reaches_the_engine_only_over_grpc() -> None:
    for path, names in imported_modules(ROOT / "server" / "bridge").items():
        # Settings, the readiness note to a supervisor and the process-wide switch of tracing (which knows nothing
        # of orders) are process plumbing, not the engine.
        plumbing = ("workers.config", "workers.readiness", "workers.telemetry.otel")
        engine = {n for n in names if n.split(".")[0] == "workers" and n not in plumbing}
        faces = {n for n in names if n.split(".")[0] == "server" and not n.startswith("server.bridge")}
        assert not engine and not faces, f"{path} imports {engine | faces}"


def test_table_aligns_columns() -> None:
    text = table(["A", "NUM"], [["x", "1"], ["long", "22"]], right=frozenset({1}))
    assert text.splitlines() == ["A     NUM", "x       1", "long   22"]


def test_route_text_for_direct_split_and_multi_hop_routes() -> None:
    def leg(dex: pb.Dex.ValueType, tin: str, tout: str, amount_in: str = "1") -> pb.RouteLeg:
        return pb.RouteLeg(dex=dex, token_in=tin, token_out=tout, amount_in=amount_in)

    assert route_text(pb.Route()) == "-"
    assert route_text(pb.Route(legs=[leg(pb.DEX_RAYDIUM, "SOL", "USDC")])) == "SOL→USDC via raydium"
    split = pb.Route(legs=[leg(pb.DEX_METEORA, "SOL", "USDC", "0.8"), leg(pb.DEX_RAYDIUM, "SOL", "USDC", "0.2")])
    assert route_text(split) == "split meteora 80% / raydium 20%"
    lopsided = pb.Route(legs=[leg(pb.DEX_RAYDIUM, "SOL", "USDC", "998"), leg(pb.DEX_METEORA, "SOL", "USDC", "2")])
    assert route_text(lopsided) == "split raydium 99.8% / meteora 0.2%"  # a real share never shows as 0%
    hops = pb.Route(legs=[leg(pb.DEX_RAYDIUM, "BONK", "SOL"), leg(pb.DEX_METEORA, "SOL", "JUP")])
    assert route_text(hops) == "BONK→SOL→JUP via raydium/meteora"
    assert short("abcdefghijklmnop", 3) == "abc…nop" and short("abc") == "abc"


def test_fit_cuts_visible_characters_and_keeps_colours() -> None:
    from client.display import fit

    assert fit("\x1b[32mhello\x1b[0m world", 7) == "\x1b[32mhello\x1b[0m w\x1b[0m"
    assert fit("plain", 10) == "plain"
