"""Dramatiq middleware: each cross-cutting concern of the order actors in a file of its own."""

from workers.middleware.attempts import OrderAttempts
from workers.middleware.engine_lifecycle import EngineLifecycle
from workers.middleware.reconciler import Reconciler

__all__ = ["EngineLifecycle", "OrderAttempts", "Reconciler"]
