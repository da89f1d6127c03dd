"""`orderengine accounts create|new-key|revoke|list` against a real PostgreSQL, and the rich errors a typed client
reads (reason, field violations)."""

from __future__ import annotations

import json

import grpc
import pytest

from client import AsyncOrderClient, InvalidArgumentError, NotFoundError, UnauthenticatedError
from tests.integration.accounts_harness import accounts_cli, create_account, new_key, revoke
from tests.stack import Stack
from workers.api_keys import parse_key


def test_create_new_key_revoke_and_list(stack: Stack) -> None:
    first = create_account(stack, "cli-acme", orders_per_minute=30)
    parse_key(first.api_key)
    second = new_key(stack, "cli-acme")
    assert second.account_id == first.account_id and second.key_id != first.key_id
    revoke(stack, first.key_id)
    again = accounts_cli(stack, "revoke", first.key_id)
    assert "revoked already" in again.stdout
    rows = [json.loads(line) for line in accounts_cli(stack, "list", "--json").stdout.splitlines()]
    acme = next(r for r in rows if r["name"] == "cli-acme")
    assert acme == {
        "account_id": first.account_id,
        "name": "cli-acme",
        "orders_per_minute": 30,
        "keys": [second.key_id],
        "revoked_keys": [first.key_id],
        "orders": 0,
    }
    default = next(r for r in rows if r["name"] == "default")
    assert default["orders_per_minute"] == int(stack.env["ORDERS_PER_MINUTE"])
    table = accounts_cli(stack, "list").stdout
    assert "cli-acme" in table and first.api_key not in table and second.api_key not in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "cli-dup"], "exists already"),
        (["new-key", "cli-nobody"], "no account named"),
        (["revoke", "0000000000000000"], "no API key"),
    ],
)
def test_admin_errors_are_clear_and_change_nothing(stack: Stack, args: list[str], message: str) -> None:
    accounts_cli(stack, "create", "cli-dup", check=False)
    done = accounts_cli(stack, *args, check=False)
    assert done.returncode == 1 and message in done.stderr and not done.stdout


def test_bad_names_and_limits_are_usage_errors(stack: Stack) -> None:
    for args in (["create", "bad name"], ["create", "ok", "--orders-per-minute", "0"], ["create", ""]):
        done = accounts_cli(stack, *args, check=False)
        assert done.returncode == 2, done


async def test_typed_client_reads_reason_violations_and_codes(stack: Stack) -> None:
    caller = create_account(stack, "cli-typed")
    async with AsyncOrderClient(stack.grpc_target, api_key=caller.api_key) as client:
        with pytest.raises(InvalidArgumentError) as bad:
            await client.execute("SOL", "USDC", "-1")
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and bad.value.reason == "INVALID_AMOUNT"
        assert [v.field for v in bad.value.violations] == ["amount"] and bad.value.field == "amount"
        assert "greater than zero" in bad.value.violations[0].description
        assert bad.value.details.startswith("amount: ")  # the message reads as before
        with pytest.raises(NotFoundError) as missing:
            await client.get("5f1c8c8e-7d1e-4c39-9c43-0f5b1a0c2f11")
        assert missing.value.reason == "ORDER_NOT_FOUND"
    async with AsyncOrderClient(stack.grpc_target, api_key="oe_nope") as client:
        with pytest.raises(UnauthenticatedError) as refused:
            await client.list()
    assert refused.value.reason == "KEY_MALFORMED"
