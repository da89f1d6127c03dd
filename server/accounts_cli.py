"""`orderengine accounts create|new-key|revoke|list`: the admin commands for accounts and their API keys.

They talk to PostgreSQL (DATABASE_URL, or the embedded store of `make run`). A key is printed once, when it is
made, and never again: only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from workers.account_store import Account, AccountExists, AccountStore, UnknownAccount, UnknownKey
from workers.api_keys import NewKey, new_key

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def account_name(text: str) -> str:
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an account name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    accounts = sub.add_parser("accounts", help="accounts and API keys (create, new-key, revoke, list)")
    commands = accounts.add_subparsers(dest="accounts_command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="a new account and its first API key")
    create.add_argument("name", type=account_name, help="the account's name: letters, digits, '.', '_', '-'")
    create.add_argument(
        "--orders-per-minute", type=positive_int, default=None, metavar="N", help="default: ORDERS_PER_MINUTE"
    )
    create.add_argument("--json", action="store_true", help="print one JSON object")
    new = commands.add_parser("new-key", help="another API key for an account")
    new.add_argument("name", type=account_name, help="the account's name")
    new.add_argument("--json", action="store_true", help="print one JSON object")
    revoke = commands.add_parser("revoke", help="revoke a key: every server refuses it within 5 s")
    revoke.add_argument("key_id", help="the key's id (the 16 hex digits after oe_), as `accounts list` shows it")
    listing = commands.add_parser("list", help="accounts, their key ids, limits and order counts")
    listing.add_argument("--json", action="store_true", help="one JSON object per account")


def _print_key(account: Account, key: NewKey, as_json: bool) -> None:
    if as_json:
        row = {"account_id": account.id, "name": account.name, "key_id": key.key_id, "api_key": key.api_key}
        print(json.dumps(row))
        return
    print(f"account  {account.name} ({account.id})")
    print(f"key id   {key.key_id}")
    print(f"api key  {key.api_key}")
    print("         shown once: keep it now, it cannot be shown again (only its hash is stored)", file=sys.stderr)


async def _create(store: AccountStore, args: argparse.Namespace, default_limit: int) -> int:
    key = new_key()
    account = await store.create_account(args.name, args.orders_per_minute, key)
    _print_key(account, key, args.json)
    return 0


async def _new_key(store: AccountStore, args: argparse.Namespace, default_limit: int) -> int:
    key = new_key()
    account = await store.add_key(args.name, key)
    _print_key(account, key, args.json)
    return 0


async def _revoke(store: AccountStore, args: argparse.Namespace, default_limit: int) -> int:
    if await store.revoke(args.key_id):
        print(f"key {args.key_id} revoked: every server and bridge refuses it within 5 s")
    else:
        print(f"key {args.key_id} was revoked already")
    return 0


async def _list(store: AccountStore, args: argparse.Namespace, default_limit: int) -> int:
    summaries = await store.list_accounts()
    if args.json:
        for s in summaries:
            row = {
                "account_id": s.account.id,
                "name": s.account.name,
                "orders_per_minute": s.account.orders_per_minute or default_limit,
            }
            print(json.dumps(row | {"keys": s.active_keys, "revoked_keys": s.revoked_keys, "orders": s.orders}))
        return 0
    header = f"{'NAME':<20} {'ACCOUNT':<22} {'ORDERS/MIN':>10} {'ORDERS':>8}  KEYS (revoked in brackets)"
    print(header)
    for s in summaries:
        limit = str(s.account.orders_per_minute) if s.account.orders_per_minute else f"{default_limit}*"
        keys = " ".join([*s.active_keys, *(f"[{k}]" for k in s.revoked_keys)]) or "-"
        print(f"{s.account.name:<20} {s.account.id:<22} {limit:>10} {s.orders:>8}  {keys}")
    if any(not s.account.orders_per_minute for s in summaries):
        print("* the server's ORDERS_PER_MINUTE", file=sys.stderr)
    return 0


Command = Callable[[AccountStore, argparse.Namespace, int], Awaitable[int]]
COMMANDS: dict[str, Command] = {"create": _create, "new-key": _new_key, "revoke": _revoke, "list": _list}


def run(args: argparse.Namespace, database_url: str, default_limit: int) -> int:
    async def go() -> int:
        store = await AccountStore.open(database_url)
        try:
            return await COMMANDS[args.accounts_command](store, args, default_limit)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except (AccountExists, UnknownAccount, UnknownKey) as exc:
        print(f"orderengine accounts: {exc}", file=sys.stderr)
        return 1
    except PoolTimeout:
        print("orderengine accounts: PostgreSQL cannot be reached (DATABASE_URL)", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable:
        print("orderengine accounts: the schema is not there yet; run `orderengine migrate` first", file=sys.stderr)
        return 1
