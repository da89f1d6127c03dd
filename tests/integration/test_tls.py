"""TLS: GRPC_TLS_* make the gRPC port TLS-only, HTTP_TLS_* the bridge's; the typed client, orderctl and the
bridge connect over TLS when told to. The certificates come from a throwaway CA (trustme)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import websockets

from client import AsyncOrderClient, OrderClient, OrderServiceError
from tests.integration.accounts_harness import Caller, create_account
from tests.integration.bridge_harness import BridgeThread
from tests.stack import ROOT, Stack, Stores

ORDERCTL = str(Path(sys.executable).with_name("orderctl"))


@dataclass
class TlsWorld:
    stack: Stack
    bridge: BridgeThread
    caller: Caller
    ca_file: str
    ca: trustme.CA


@pytest.fixture(scope="module")
def tls(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsWorld]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    stack = Stack.start(
        stores,
        AUTH="required",
        GRPC_TLS_CERT_FILE=str(cert_file),
        GRPC_TLS_KEY_FILE=str(key_file),
        GRPC_TARGET_CA_FILE=str(ca_file),
    )
    bridge = BridgeThread(
        stack.grpc_target,
        auth_required=True,
        tls_cert_file=str(cert_file),
        tls_key_file=str(key_file),
        grpc_tls=True,
        grpc_ca_file=str(ca_file),
    )
    try:
        bridge.start()
        yield TlsWorld(stack, bridge, create_account(stack, "tls-user"), str(ca_file), ca)
    finally:
        bridge.stop()
        stack.stop()


def test_typed_client_over_tls(tls: TlsWorld) -> None:
    with OrderClient(tls.stack.grpc_target, api_key=tls.caller.api_key, ca_file=tls.ca_file) as client:
        order_id = client.execute("SOL", "USDC", "0.1")
        events = list(client.watch(order_id))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]


def test_the_grpc_port_is_tls_only(tls: TlsWorld) -> None:
    plaintext = OrderClient(tls.stack.grpc_target, api_key=tls.caller.api_key, deadline=3)
    with plaintext, pytest.raises(OrderServiceError) as err:
        plaintext.quote("SOL", "USDC", "1")
    assert err.value.is_connection_failure, err.value
    untrusted = OrderClient(tls.stack.grpc_target, api_key=tls.caller.api_key, tls=True, deadline=3)
    with untrusted, pytest.raises(OrderServiceError) as err:  # the system's roots do not know the test CA
        untrusted.quote("SOL", "USDC", "1")
    assert err.value.is_connection_failure, err.value


def test_orderctl_over_tls(tls: TlsWorld) -> None:
    env = {**os.environ, "ORDERENGINE_API_KEY": tls.caller.api_key}
    args = [ORDERCTL, "--target", tls.stack.grpc_target, "--ca-file", tls.ca_file, "--json", "quote", "SOL", "USDC"]
    args.append("1")
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["route"]["amountOut"]
    keyless = subprocess.run(
        args, env={k: v for k, v in env.items() if k != "ORDERENGINE_API_KEY"}, capture_output=True, text=True
    )
    assert keyless.returncode == 1 and "UNAUTHENTICATED" in keyless.stderr


async def test_bridge_serves_https_and_wss_and_reaches_the_service_over_tls(tls: TlsWorld) -> None:
    context = ssl.create_default_context(cafile=tls.ca_file)
    body = json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1"}).encode()
    request = urllib.request.Request(
        f"{tls.bridge.http}/api/orders/execute",
        data=body,
        headers={"Content-Type": "application/json", **tls.caller.headers},
        method="POST",
    )

    def post() -> str:
        with urllib.request.urlopen(request, context=context, timeout=15) as response:
            order_id: str = json.loads(response.read())["orderId"]
            return order_id

    order_id = await asyncio.to_thread(post)
    url = f"{tls.bridge.ws}/ws/orders/{order_id}?access_token={tls.caller.api_key}"
    async with websockets.connect(url, ssl=context) as ws:
        messages = [json.loads(m) async for m in ws]
    assert [m["status"] for m in messages][-1] == "confirmed"
    async with AsyncOrderClient(tls.stack.grpc_target, api_key=tls.caller.api_key, ca_file=tls.ca_file) as c:
        assert (await c.get(order_id)).order_id == order_id
