"""How `orderctl` shows things on a terminal: tables, the live lifecycle display and the order summary."""

from __future__ import annotations

import itertools
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC
from decimal import Decimal
from typing import TextIO

from client.json_format import timestamp_text
from client.options import TERMINAL_STATUSES, dex_name, status_name
from orderengine.v1 import order_service_pb2 as pb

_ANSI = re.compile(r"(\x1b\[[0-9;]*m)")
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_STATUS_WIDTH = 9  # len("submitted")


class Style:
    """ANSI colours, or nothing when the stream is not a terminal or NO_COLOR is set."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def status(self, status: pb.OrderStatus.ValueType, text: str | None = None) -> str:
        text = text if text is not None else status_name(status)
        if status == pb.ORDER_STATUS_CONFIRMED:
            return self.green(text)
        if status == pb.ORDER_STATUS_FAILED:
            return self.red(text)
        return self.cyan(text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> str:
    """A plain text table; columns whose index is in `right` are right-aligned (numbers)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def fit(text: str, width: int) -> str:
    """`text` cut to `width` visible characters (ANSI colour codes kept, not counted).

    The spinner line is redrawn with a carriage return, which only works while it fits on one terminal row.
    """
    out: list[str] = []
    visible = 0
    for piece in _ANSI.split(text):
        if _ANSI.fullmatch(piece):
            out.append(piece)
            continue
        room = width - visible
        if room <= 0:
            continue
        out.append(piece[:room])
        visible += min(len(piece), room)
    return "".join(out) + ("\x1b[0m" if "\x1b[" in text else "")


def short(text: str, keep: int = 6) -> str:
    """``5VERv8NM...iSZkQUW`` style shortening for signatures and pool ids."""
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep:]}"


def clock(ts_text: str | None) -> str:
    """``2026-11-24T11:04:57.123Z`` -> ``11:04:57.123``."""
    return ts_text[11:23] if ts_text else "--:--:--.---"


def route_text(route: pb.Route) -> str:
    """``raydium SOL→USDC`` or ``raydium 60% + meteora 40%`` for a split."""
    legs = list(route.legs)
    if not legs:
        return "-"
    venues = [dex_name(leg.dex) or "?" for leg in legs]
    parallel = len({leg.token_in for leg in legs}) == 1 and len({leg.token_out for leg in legs}) == 1
    if len(legs) > 1 and parallel:
        amounts = [Decimal(leg.amount_in or "0") for leg in legs]
        total = sum(amounts) or Decimal(1)
        shares = (f"{v} {_percent(a / total)}" for v, a in zip(venues, amounts, strict=True))
        return "split " + " / ".join(shares)
    hops = [legs[0].token_in, *(leg.token_out for leg in legs)]
    return f"{'→'.join(hops)} via {'/'.join(dict.fromkeys(venues))}"


def _percent(share: Decimal) -> str:
    """``60%``; a share that would round to 0 or 100 keeps a decimal (``0.2%``, ``99.8%``)."""
    whole = round(100 * share)
    if 0 < whole < 100 or share in (0, 1):
        return f"{whole}%"
    if share < Decimal("0.001"):
        return "<0.1%"
    return ">99.9%" if share > Decimal("0.999") else f"{100 * share:.1f}%"


def event_detail(event: pb.OrderEvent) -> str:
    """What is new in this event, in a few words."""
    parts: list[str] = []
    if event.status == pb.ORDER_STATUS_ROUTING and event.attempt > 1:
        parts.append(f"attempt {event.attempt}")
    if event.HasField("error"):
        error = event.error
        parts.append(f"{error.code}: {error.message}" if error.message else error.code)
    if event.status == pb.ORDER_STATUS_BUILDING and event.HasField("route"):
        parts.append(route_text(event.route))
    for venue in event.skipped_venues:
        parts.append(f"without {dex_name(venue.dex) or '?'} ({venue.reason})")
    if event.instructions:
        # the swap and SOL (un)wrapping steps say what the transaction does; compute-budget and account
        # set-up steps are only counted (`orderctl --json watch` has them all)
        key = [name for name in event.instructions if "swap" in name or "wrap" in name]
        parts.append(f"{len(event.instructions)} ix: " + " → ".join(key or event.instructions))
    if event.tx_signature and event.status == pb.ORDER_STATUS_SUBMITTED:
        parts.append(f"tx {short(event.tx_signature)}")
    if event.status == pb.ORDER_STATUS_CONFIRMED and event.amount_out:
        parts.append(f"out {event.amount_out} @ {event.executed_price}")
    return "  ".join(parts)


class LiveProgress:
    """Prints an order's events as they come: one line per stage.

    On a terminal the newest stage carries a spinner and a running clock until the next event replaces it;
    elsewhere (a pipe, a log) each event is one plain line, printed once.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.style = Style(stream)
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.shown_seq = 0  # seq of the last event on screen: where an interrupted watch resumes

    def _line(self, event: pb.OrderEvent, icon: str) -> str:
        status = status_name(event.status).ljust(_STATUS_WIDTH)
        ts = timestamp_text(event.time)
        seq = f"#{event.seq}".rjust(3)
        when = self.style.dim(f"{clock(ts)} {seq}")
        return f"  {icon} {self.style.status(event.status, status)}  {when}  {event_detail(event)}"

    def width(self) -> int:
        return shutil.get_terminal_size((100, 24)).columns - 1

    def _icon(self, event: pb.OrderEvent, done: bool) -> str:
        if event.status == pb.ORDER_STATUS_FAILED:
            return self.style.red("✗")
        if event.HasField("error"):
            return self.style.yellow("↻")
        return self.style.green("✓") if done else "•"

    def follow(self, events: Iterator[pb.OrderEvent]) -> pb.OrderEvent | None:
        """Show `events` until they end; return the last one. Errors of the iterator are re-raised here."""
        if not self.live:
            last: pb.OrderEvent | None = None
            for event in events:
                print(self._line(event, self._icon(event, True)).rstrip(), file=self.stream, flush=True)
                last = event
                self.shown_seq = event.seq
            return last
        return self._follow_live(events)

    def _follow_live(self, events: Iterator[pb.OrderEvent]) -> pb.OrderEvent | None:
        inbox: queue.Queue[pb.OrderEvent | BaseException | None] = queue.Queue()

        def pump() -> None:
            try:
                for event in events:
                    inbox.put(event)
                inbox.put(None)
            except BaseException as e:  # handed to the main thread, which re-raises it
                inbox.put(e)

        threading.Thread(target=pump, name="orderctl-watch", daemon=True).start()
        spinner = itertools.cycle(_SPINNER)
        current: pb.OrderEvent | None = None
        since = time.monotonic()
        while True:
            try:
                item = inbox.get(timeout=0.08)
            except queue.Empty:
                if current is not None:
                    waited = f"{time.monotonic() - since:4.1f}s"
                    line = self._line(current, self.style.cyan(next(spinner))) + "  " + self.style.dim(waited)
                    self.stream.write("\r\x1b[2K" + fit(line, self.width()))
                    self.stream.flush()
                continue
            if current is not None:
                done = self._line(current, self._icon(current, True)).rstrip()
                self.stream.write(f"\r\x1b[2K{done}\n")
            if item is None:
                self.stream.flush()
                return current
            if isinstance(item, BaseException):
                self.stream.flush()
                raise item
            current, since = item, time.monotonic()
            self.shown_seq = item.seq
            if item.status in TERMINAL_STATUSES:
                self.stream.write(self._line(item, self._icon(item, True)).rstrip() + "\n")
                self.stream.flush()
                return item
            self.stream.write(fit(self._line(item, self.style.cyan(next(spinner))), self.width()))
            self.stream.flush()


def order_summary(order: pb.Order, style: Style) -> str:
    """The block printed after an order ends and by `orderctl get`."""
    attempt_note = f"  (attempt {order.attempt})" if order.attempt > 1 else ""
    rows: list[tuple[str, str]] = [
        ("order", order.order_id),
        ("status", style.status(order.status) + attempt_note),
        ("sell", f"{order.amount} {order.token_in}"),
        ("buy", order.token_out),
        ("slippage", f"{order.slippage_bps} bps"),
    ]
    if order.HasField("route") and order.route.legs:
        route = order.route
        rows.append(("route", route_text(route)))
        for i, leg in enumerate(route.legs, 1):
            pool = f"  pool {leg.pool_id}" if leg.pool_id else ""
            rows.append(
                (
                    f"  leg {i}",
                    f"{dex_name(leg.dex)}  {leg.amount_in} {leg.token_in} → {leg.amount_out} {leg.token_out}{pool}",
                )
            )
        rows.append(("quoted out", f"{route.amount_out} {order.token_out} (min {route.min_amount_out})"))
        rows.append(("impact", f"{route.price_impact_bps} bps"))
    if order.executed_price:
        rows.append(("price", f"{order.executed_price} {order.token_out}/{order.token_in}"))
    if order.amount_out:
        rows.append(("received", style.bold(f"{order.amount_out} {order.token_out}")))
    if order.tx_signature:
        rows.append(("signature", order.tx_signature))
    if order.HasField("error") and order.status == pb.ORDER_STATUS_FAILED:
        rows.append(("error", style.red(f"{order.error.code}: {order.error.message}")))
    created, updated = timestamp_text(order.created_at), timestamp_text(order.updated_at)
    if created:
        rows.append(("created", created))
    if updated and order.status in TERMINAL_STATUSES and order.created_at.seconds:
        took = order.updated_at.ToDatetime(tzinfo=UTC) - order.created_at.ToDatetime(tzinfo=UTC)
        rows.append(("took", f"{took.total_seconds():.3f}s"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{style.dim(k.ljust(width))}  {v}" for k, v in rows)


def stderr_style() -> Style:
    return Style(sys.stderr)
