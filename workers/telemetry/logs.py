"""Log lines for people (the default) or for machines (`LOG_FORMAT=json`: one JSON object per line on stderr).

A JSON line carries time, level, logger, message and pid, every field a call passed with `extra=` (`order_id`,
`attempt`, `seq`, `status`, `account`, ...), and the trace and span ids when a span is current, so one order's
lines can be picked out of every process's output and joined with its trace.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# What every LogRecord has: the rest of a record's attributes came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s"


# Set by a worker's MessageTracing: the span advancing an order, for lines logged outside any current span.
order_span: Callable[[str], Any] | None = None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        line.update(_trace_ids(line.get("order_id")))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _trace_ids(order_id: Any) -> dict[str, str]:
    """The current span's ids (or the span advancing the line's order), when tracing is on."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    span = trace.get_current_span()
    if not span.get_span_context().is_valid and order_id and order_span is not None:
        span = order_span(str(order_id)) or span
    context = span.get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configures the root logger on stderr; `fmt` is "text" or "json" (LOG_FORMAT)."""
    if fmt not in ("text", "json"):
        raise SystemExit(f"LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format
