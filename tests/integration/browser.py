"""What the browser and Node tests need from outside PyPI, and one rule when it is missing.

Chromium is Debian's package (`apt-get install -y chromium`, which `.ci/run` does), driven by Playwright; nothing
downloads a browser at run time. The npm packages come from the registry through `make web-deps`. A missing tool
fails the tests that need it, loudly, unless `SKIP_WEB_TESTS=1` opts out explicitly (then they are skipped).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OPT_OUT = "SKIP_WEB_TESTS"


def missing(message: str) -> None:
    """Fails the test (or skips it, when the run opted out with SKIP_WEB_TESTS=1)."""
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(f"{message} ({OPT_OUT}=1)")
    pytest.fail(f"{message}; set {OPT_OUT}=1 to skip the browser and Node tests instead")


def need_chromium() -> str:
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not found at {CHROMIUM}: install Debian's package (apt-get install -y chromium)")
    return CHROMIUM
