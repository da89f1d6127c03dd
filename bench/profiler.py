"""Optional sampling profile of the server and worker processes under load, with py-spy when it is installed
(`.venv/bin/pip install py-spy`); the benchmark runs without it and says so."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes] | None:
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen(
        [
            *(exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)),
            *("--format", "raw", "--nonblocking", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _short(file: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{_short(m['file'])}:{m['func']}"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the samples, by function (file:function), from py-spy's collapsed stacks."""
    if not path.exists():
        return {"samples": 0, "self": [], "inclusive": []}
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        names = [_name(f) for f in frames]
        total += count
        self_counts[names[-1]] += count
        for name in set(names):
            incl_counts[name] += count
    if total == 0:
        return {"samples": 0, "self": [], "inclusive": []}

    def share(c: Counter[str], n: int = top) -> list[dict[str, Any]]:
        return [{"function": k, "share": round(v / total, 4)} for k, v in c.most_common(n)]

    by_package: Counter[str] = Counter()
    for name, v in self_counts.items():
        file = name.split(":", 1)[0]
        pkg = file.split("/", 1)[0] if "/" in file else file.removesuffix(".py")
        by_package[pkg] += v
    return {
        "samples": total,
        "self": share(self_counts),
        "inclusive": share(incl_counts, 4 * top),
        "self_by_package": share(by_package),
    }
