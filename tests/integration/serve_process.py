"""A second `orderengine serve` (the installed entry point) on a port of its own, for tests that kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.scratch_stores import free_port
from tests.stack import Stack

ORDERENGINE = str(Path(sys.executable).with_name("orderengine"))


class Serve:
    """`orderengine serve` with the stack's environment and GRPC_PORT of its own; SIGKILLed and restarted at will."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.env = {**stack.env, "GRPC_PORT": str(self.port)}
        self.log = stack.logs / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([ORDERENGINE, "serve"], env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
