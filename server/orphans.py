"""Child processes that die with their parent, so a killed supervisor leaves no orphan behind.

The parent puts its pid in the child's environment (`child_env`); the child, first thing in `main`, asks Linux to
send it SIGTERM when that parent exits (`die_with_parent_if_asked`). This runs in the child after exec, not as a
`preexec_fn`: forking a process whose gRPC threads hold locks and running Python before exec can hang the child.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_PID_VAR = "ORDERENGINE_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def child_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, PARENT_PID_VAR: str(os.getpid())}


def die_with_parent_if_asked() -> None:
    parent = os.environ.pop(PARENT_PID_VAR, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the parent died before we asked: follow it now
        sys.exit(1)
