"""Accounts for tests, made the way operators make them: with `orderengine accounts ...` on the stack's database."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from tests.stack import ROOT, Stack


def accounts_cli(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "accounts", *args],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


@dataclass(frozen=True)
class Caller:
    account_id: str
    name: str
    key_id: str
    api_key: str

    @classmethod
    def from_json(cls, text: str) -> Caller:
        d: dict[str, Any] = json.loads(text)
        assert set(d) == {"account_id", "name", "key_id", "api_key"}, d
        return cls(d["account_id"], d["name"], d["key_id"], d["api_key"])

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def create_account(stack: Stack, name: str, orders_per_minute: int | None = None) -> Caller:
    extra = ["--orders-per-minute", str(orders_per_minute)] if orders_per_minute else []
    return Caller.from_json(accounts_cli(stack, "create", name, *extra, "--json").stdout)


def new_key(stack: Stack, name: str) -> Caller:
    return Caller.from_json(accounts_cli(stack, "new-key", name, "--json").stdout)


def revoke(stack: Stack, key_id: str) -> None:
    accounts_cli(stack, "revoke", key_id)
