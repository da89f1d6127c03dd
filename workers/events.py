"""The one path an order event takes once the transaction that made it has committed.

    OrderStore (workers/store.py): guarded UPDATE + event row, one transaction; commit
      -> EventSink.committed(*events)            here: publish (one round trip per commit), log, tell the observers
         (a new order's `pending`: EventSink.created, log and tell only; no one can be watching it yet)
      -> Redis pub/sub, channel per order        workers/publisher.py
      -> the server's EventHub, one pattern subscription per process, a queue per stream    server/watch.py
      -> follow(): replay, de-duplicate, fill gaps, re-read on silence -> WatchOrder        server/watch.py
      -> the bridge's WebSocket, itself a WatchOrder client                                server/bridge/sockets.py

Every method of `OrderStore` that writes an event calls `committed` after its commit, and nothing else publishes or
logs an event: actors, middleware and the servicer only ask the store for transitions. Observers are the hook for
metrics and traces: each is called with every committed event, in order, on the caller's event loop. A future
outbox table would be written in the store's transaction and relayed from here.

Publishing is best effort: the event is already stored, and a watcher fills any gap from PostgreSQL.

Pool moves take the same road out of the store: whatever moves a pool (a settled swap, the market drift, a
launch) calls `pools_moved` after its commit when some order rests (a launch always; `OrderStore._any_open` says
why skipping it otherwise loses nothing), and the hooks (the engine's: one "pools moved" message for the trigger
engine, workers/triggers.py) hear of it. A lost one costs latency only: the reconciler sweeps triggers too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from workers.models import OrderEvent
from workers.publisher import EventPublisher

log = logging.getLogger(__name__)

EventObserver = Callable[[OrderEvent], None]
PoolsMovedHook = Callable[[Sequence[str]], Awaitable[None]]


class EventSink:
    """Parameters:
    publisher(EventPublisher | None): where watchers hear of events; None publishes nothing (one-shot tools).
    observers(iterable of EventObserver): called with every committed event; more can be added with `observe`.
    """

    def __init__(self, publisher: EventPublisher | None = None, observers: Iterable[EventObserver] = ()) -> None:
        self._publisher = publisher
        self._observers = list(observers)
        self._pool_hooks: list[PoolsMovedHook] = []

    def observe(self, observer: EventObserver) -> None:
        self._observers.append(observer)

    def on_pools_moved(self, hook: PoolsMovedHook) -> None:
        self._pool_hooks.append(hook)

    async def pools_moved(self, pool_ids: Sequence[str]) -> None:
        """Called by the store once a transaction that changed these pools has committed."""
        for hook in self._pool_hooks:
            try:
                await hook(pool_ids)
            except Exception:  # the move is committed; the reconciler's trigger sweep covers a lost message
                log.exception("pools-moved hook %r failed for %s", hook, list(pool_ids))

    async def committed(self, *events: OrderEvent) -> None:
        """The events one transaction committed, in order."""
        if self._publisher is not None:
            await self._publisher.publish(*events)
        for event in events:
            self._log_and_observe(event)

    def created(self, pending: OrderEvent) -> None:
        """A new order's `pending` event: logged and observed, not published. Its channel has no subscriber yet,
        as no one can watch an order before its client is told its id, and every watcher reads what came before
        it subscribed from PostgreSQL; publishing it would only cost the accept a round trip to Redis and every
        server process a message to decode and drop."""
        self._log_and_observe(pending)

    def _log_and_observe(self, event: OrderEvent) -> None:
        error = event.details.error
        fields = {"order_id": event.order_id, "status": event.status.value, "attempt": event.attempt, "seq": event.seq}
        if error:
            fields["error_code"] = error.code
        if event.details.amount_out is not None:  # whole tokens, as users write them
            fields["amount_out"] = event.details.amount_out
        log.info(
            "order %s: %s (attempt %d, seq %d%s)",
            event.order_id,
            event.status,
            event.attempt,
            event.seq,
            f", {error.code}" if error else "",
            extra=fields,
        )
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer's bug must not stop the order or the other observers
                log.exception("event observer %r failed on order %s seq %d", observer, event.order_id, event.seq)
