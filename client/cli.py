"""`orderctl`: the order service from a shell (execute, watch, get, list, quote)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from client.display import LiveProgress, Style, order_summary, route_text, table
from client.errors import OrderServiceError
from client.json_format import event_json, order_json, quote_json, timestamp_text
from client.options import DEFAULT_TARGET, TERMINAL_STATUSES, UINT32_MAX, dex_name, parse_status, status_name
from client.sync_client import OrderClient
from orderengine.v1 import order_service_pb2 as pb

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """\
exit codes:
  0    the command succeeded (for execute --watch and watch: the order confirmed)
  1    the order failed, or the service answered with an error / could not be reached
  2    usage error: bad command line, or the service rejected the input (INVALID_ARGUMENT)
  130  interrupted (Ctrl-C); a watched order carries on, and the command to follow it again is printed

errors go to stderr, as one line, or with --json as one JSON object:
  {"error": {"code": "NOT_FOUND", "message": "order ... not found", "field": null}}

environment:
  ORDERCTL_TARGET       default for --target (host:port of the gRPC service)
  ORDERENGINE_API_KEY   default for --api-key (better than --api-key: a command line is visible to `ps`)

examples:
  orderctl execute SOL USDC 1.5 --watch
  orderctl --json watch 0b0a5b6e-...-... --from-seq 3
  orderctl list --status confirmed --limit 20
  orderctl quote SOL USDC 1000
"""


def _print_json(value: Any) -> None:
    print(json.dumps(value, separators=(",", ":")), flush=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _bps(text: str) -> int:
    """The shape only; the service judges the largest slippage it allows."""
    value = int(text)
    if not 0 <= value <= UINT32_MAX:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _expiry(text: str) -> datetime:
    """``10m``, ``2h``, ``1d``, ``30s`` from now, or an RFC 3339 timestamp (``2026-01-01T12:00:00Z``)."""
    found = _DURATION.match(text.strip())
    if found:
        return datetime.now(UTC) + timedelta(seconds=int(found.group(1)) * _SECONDS[found.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 10m, 2h, 1d or an RFC 3339 time, got {text!r}")
    return moment


def _status(text: str) -> str:
    try:
        parse_status(text)
    except ValueError:
        names = ", ".join(status_name(s) for s in pb.OrderStatus.values() if s)
        raise argparse.ArgumentTypeError(f"unknown status {text!r} (one of {names})") from None
    return text


def _watch(client: OrderClient, order_id: str, from_seq: int, as_json: bool) -> int:
    """Follow an order to its end; the exit code says how it ended. Ctrl-C stops watching, not the order."""
    progress = LiveProgress(sys.stdout)
    progress.shown_seq = from_seq
    try:
        return _follow(client, order_id, from_seq, as_json, progress)
    except KeyboardInterrupt:
        last = progress.shown_seq
        if as_json:
            print(json.dumps({"interrupted": True, "orderId": order_id, "lastSeq": last}), file=sys.stderr)
        else:
            again = f"orderctl watch {order_id} --from-seq {last}"
            print(f"\nstopped watching; the order carries on. To follow it again: {again}", file=sys.stderr)
        # Leave at once: closing a channel whose stream a signal interrupted can wait on gRPC's threads at exit
        # (twice, late in a loaded test suite, orderctl was still alive 30 s after Ctrl-C), and whoever pressed
        # Ctrl-C wants the prompt back now. Nothing is left to flush but our own streams.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)


def _follow(client: OrderClient, order_id: str, from_seq: int, as_json: bool, progress: LiveProgress) -> int:
    events = client.watch(order_id, from_seq=from_seq)
    if as_json:
        last: pb.OrderEvent | None = None
        for event in events:
            _print_json(event_json(event))
            last = event
            progress.shown_seq = event.seq
    else:
        last = progress.follow(events)
        if last is not None and last.status in TERMINAL_STATUSES:
            print(file=sys.stdout)
            print(order_summary(client.get(order_id), Style(sys.stdout)), flush=True)
    if last is None or last.status not in TERMINAL_STATUSES:
        # from_seq was already past the end: the stored order says how it ended.
        order = client.get(order_id)
        if not as_json and last is None:
            print(order_summary(order, Style(sys.stdout)), flush=True)
        return EXIT_OK if order.status == pb.ORDER_STATUS_CONFIRMED else EXIT_FAILED
    return EXIT_OK if last.status == pb.ORDER_STATUS_CONFIRMED else EXIT_FAILED


def cmd_execute(client: OrderClient, args: argparse.Namespace) -> int:
    order_id = client.execute(
        args.token_in,
        args.token_out,
        args.amount,
        args.slippage_bps,
        args.idempotency_key,
        order_type=getattr(args, "order_type", None),
        limit_price=getattr(args, "price", None) or "",
        expires_at=getattr(args, "expires", None),
        max_price_impact_bps=args.max_price_impact_bps,
    )
    if args.json:
        _print_json({"orderId": order_id})
    elif args.watch:
        style = Style(sys.stdout)
        pair = f"{args.amount} {args.token_in} → {args.token_out}"
        print(f"{style.bold('order')} {order_id}  {pair}", flush=True)
    else:
        print(order_id, flush=True)
    return _watch(client, order_id, 0, args.json) if args.watch else EXIT_OK


def cmd_cancel(client: OrderClient, args: argparse.Namespace) -> int:
    order = client.cancel(args.order_id)
    if args.json:
        _print_json(order_json(order))
    else:
        print(order_summary(order, Style(sys.stdout)))
    return EXIT_OK


def cmd_watch(client: OrderClient, args: argparse.Namespace) -> int:
    return _watch(client, args.order_id, args.from_seq, args.json)


def cmd_get(client: OrderClient, args: argparse.Namespace) -> int:
    order = client.get(args.order_id)
    if args.json:
        _print_json(order_json(order))
    else:
        print(order_summary(order, Style(sys.stdout)))
    return EXIT_OK


def cmd_list(client: OrderClient, args: argparse.Namespace) -> int:
    orders: list[pb.Order] = []
    token = ""
    while len(orders) < args.limit:
        # Ask for all that is left; the service caps a page at its own maximum and says where to go on.
        page = client.list(args.status, page_size=min(args.limit - len(orders), UINT32_MAX), page_token=token)
        orders.extend(page.orders)
        token = page.next_page_token
        if not token or not page.orders:
            break
    orders = orders[: args.limit]
    if args.json:
        for order in orders:
            _print_json(order_json(order))
        return EXIT_OK
    if not orders:
        print("no orders" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    style = Style(sys.stdout)
    rows = [
        [
            o.order_id,
            (timestamp_text(o.created_at) or "")[:19].replace("T", " "),
            f"{o.token_in}→{o.token_out}",
            o.amount,
            status_name(o.status),
            dex_name(o.dex) or "-",
            o.amount_out or "-",
            o.executed_price or "-",
            _signature_or_error(o),
        ]
        for o in orders
    ]
    text = table(
        ["ORDER", "CREATED (UTC)", "PAIR", "AMOUNT", "STATUS", "DEX", "OUT", "PRICE", "SIGNATURE / ERROR"],
        rows,
        right=frozenset({3, 6, 7}),
    )
    lines = text.split("\n")
    print(style.dim(lines[0]))
    for line, order in zip(lines[1:], orders, strict=True):
        # colour the status column only; the table is laid out on plain text so widths stay right
        name = status_name(order.status)
        print(line.replace(f"  {name} ", f"  {style.status(order.status, name)} ", 1))
    return EXIT_OK


def _signature_or_error(order: pb.Order) -> str:
    """A failed order's reason (its last attempt may have a signature too); otherwise its signature."""
    if order.status == pb.ORDER_STATUS_FAILED and order.HasField("error"):
        return order.error.code
    return order.tx_signature or "-"


def cmd_quote(client: OrderClient, args: argparse.Namespace) -> int:
    response = client.quote(args.token_in, args.token_out, args.amount, args.slippage_bps)
    if args.json:
        _print_json(quote_json(response))
        return EXIT_OK
    style = Style(sys.stdout)
    print(f"{style.bold('quote')}  {args.amount} {args.token_in} → {args.token_out}")
    best = response.route.amount_out if response.HasField("route") else ""
    rows = [
        [dex_name(q.dex) or "?", q.amount_out, f"{q.price_impact_bps} bps", f"{q.fee_bps} bps"] for q in response.quotes
    ]
    if rows:
        print()
        print(table(["VENUE", f"OUT ({args.token_out})", "IMPACT", "FEE"], rows, right=frozenset({1, 2, 3})))
    for note in response.unquoted_venues:  # a venue left out of the table says why
        print(style.dim(f"  {dex_name(note.dex) or '?'}: {note.reason}"))
    if response.HasField("route"):
        route = response.route
        print()
        print(f"{style.bold('route')}  {route_text(route)}")
        print(f"  out {style.bold(best)} {args.token_out}  min {route.min_amount_out}", end="")
        print(f"  impact {route.price_impact_bps} bps")
        legs = [
            [
                str(i),
                dex_name(leg.dex) or "?",
                f"{leg.amount_in} {leg.token_in}",
                f"{leg.amount_out} {leg.token_out}",
                leg.pool_id or "-",
            ]
            for i, leg in enumerate(route.legs, 1)
        ]
        print()
        print(table(["LEG", "VENUE", "IN", "OUT", "POOL"], legs, right=frozenset({2, 3})))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orderctl",
        description="Place, follow and inspect swap orders on the order execution engine (gRPC).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("ORDERCTL_TARGET") or DEFAULT_TARGET,
        help="host:port of the gRPC service (default: $ORDERCTL_TARGET or %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ORDERENGINE_API_KEY") or None,
        metavar="KEY",
        help="the API key of your account (default: $ORDERENGINE_API_KEY; none: the service's anonymous account)",
    )
    parser.add_argument("--tls", action="store_true", help="connect over TLS (the system's CA roots)")
    parser.add_argument(
        "--ca-file", default=None, metavar="PEM", help="connect over TLS, trusting this CA (e.g. a self-signed one)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (JSON lines)")
    parser.add_argument(
        "--deadline", type=float, default=10.0, metavar="SECONDS", help="deadline of each call (default 10)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    execute = commands.add_parser(
        "execute",
        help="place a market order",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    execute.add_argument("token_in", help="token sold, e.g. SOL (symbol or mint address)")
    execute.add_argument("token_out", help="token bought, e.g. USDC")
    execute.add_argument("amount", help="amount of token_in in whole tokens, e.g. 1.5")
    execute.add_argument("--slippage-bps", type=_bps, default=0, metavar="N", help="0 means 50 bps")
    execute.add_argument("--idempotency-key", default="", metavar="KEY", help="same key, same order")
    execute.add_argument(
        "--max-price-impact-bps",
        type=_bps,
        default=0,
        metavar="N",
        help="refuse the order if it would move the price by more than N bps itself (0 means 1000)",
    )
    execute.add_argument("--watch", action="store_true", help="follow the order live until it ends")
    execute.set_defaults(run=cmd_execute)

    limit = commands.add_parser(
        "limit",
        help="place a limit order: it waits (open) until the market reaches --price, then executes",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    limit.add_argument("token_in", help="token sold, e.g. SOL")
    limit.add_argument("token_out", help="token bought, e.g. USDC")
    limit.add_argument("amount", help="amount of token_in in whole tokens, e.g. 1.5")
    limit.add_argument("--price", required=True, metavar="P", help="worst price accepted, token_out per token_in")
    limit.set_defaults(order_type="limit")

    snipe = commands.add_parser(
        "snipe",
        help="place a sniper order: it buys MINT as soon as its pool launches",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    snipe.add_argument("token_in", help="token sold, e.g. SOL")
    snipe.add_argument("token_out", metavar="mint", help="mint address of the token to buy (need not be listed yet)")
    snipe.add_argument("amount", help="amount of token_in in whole tokens, e.g. 0.5")
    snipe.add_argument("--price", default=None, metavar="P", help="cap: worst price accepted, tokens per token_in")
    snipe.set_defaults(order_type="sniper")
    for resting in (limit, snipe):
        resting.add_argument("--expires", type=_expiry, default=None, metavar="WHEN", help="e.g. 10m, 2h, 1d")
        resting.add_argument("--slippage-bps", type=_bps, default=0, metavar="N", help="0 means 50 bps")
        resting.add_argument("--idempotency-key", default="", metavar="KEY", help="same key, same order")
        resting.add_argument("--max-price-impact-bps", type=_bps, default=0, metavar="N", help="0 means 1000")
        resting.add_argument("--watch", action="store_true", help="follow the order live until it ends")
        resting.set_defaults(run=cmd_execute)

    cancel = commands.add_parser("cancel", help="cancel an order that has not started executing")
    cancel.add_argument("order_id")
    cancel.set_defaults(run=cmd_cancel)

    watch = commands.add_parser("watch", help="follow an order's events until it ends")
    watch.add_argument("order_id")
    watch.add_argument("--from-seq", type=int, default=0, metavar="N", help="only events after seq N")
    watch.set_defaults(run=cmd_watch)

    get = commands.add_parser("get", help="show an order as stored now")
    get.add_argument("order_id")
    get.set_defaults(run=cmd_get)

    listing = commands.add_parser("list", help="recent orders, newest first")
    listing.add_argument("--status", type=_status, default=None, help="only this status, e.g. confirmed or open")
    listing.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="at most N orders (20)")
    listing.set_defaults(run=cmd_list)

    quote = commands.add_parser("quote", help="per-venue quotes and the route routing would pick now")
    quote.add_argument("token_in")
    quote.add_argument("token_out")
    quote.add_argument("amount")
    quote.add_argument("--slippage-bps", type=_bps, default=0, metavar="N")
    quote.set_defaults(run=cmd_quote)
    for sub in (execute, limit, snipe, cancel, watch, get, listing, quote):
        # `orderctl get ID --json` works as well as `orderctl --json get ID`
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[OrderClient, argparse.Namespace], int] = args.run
    if args.ca_file and not os.path.isfile(args.ca_file):
        parser.error(f"--ca-file {args.ca_file}: no such file")
    try:
        with OrderClient(
            args.target, deadline=args.deadline, api_key=args.api_key, tls=args.tls, ca_file=args.ca_file
        ) as client:
            return run(client, args)
    except OrderServiceError as e:
        if args.json:
            error = {"code": e.code_name, "message": e.details, "field": e.field}
            if e.is_connection_failure:
                error["message"] = e.one_line()
            print(json.dumps({"error": error}, separators=(",", ":")), file=sys.stderr, flush=True)
        else:
            print(f"error: {e.one_line()}", file=sys.stderr, flush=True)
        return EXIT_USAGE if e.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `orderctl list | head`
        return EXIT_OK
