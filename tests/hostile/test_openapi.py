"""The bridge's OpenAPI description against the running bridge: served from the one file, naming every route the
app has, and (schemathesis) every answer to generated and hostile requests keeps to it: no 5xx, no answer that
breaks its own schema, no dropped connection, invalid input refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route, WebSocketRoute

from server.bridge import create_app, grpc_web
from tests.hostile.conftest import ErrorRecords, assert_no_bug_logged
from tests.hostile.tally import TALLY, fuzz_settings
from tests.integration.bridge_harness import BridgeThread, http
from tests.stack import ROOT, Stack

DESCRIPTION = ROOT / "docs" / "openapi.yaml"
# positive_data_acceptance is left out on purpose: a request can fit the schema and still be refused for what it
# means (an unknown token, SOL for SOL, more than any supply), which only the service can judge.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def described() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(Path(DESCRIPTION).read_text())
    return document


def test_served_description_is_the_file(bridge: BridgeThread) -> None:
    result = http("GET", f"{bridge.http}/openapi.json")
    assert result.status == 200 and result.headers["content-type"] == "application/json"
    assert result.json() == described()
    assert described()["openapi"].startswith("3.1")


def test_every_http_route_is_described_and_nothing_else() -> None:
    app = create_app("127.0.0.1:1", [])
    in_app = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route) and route.path != grpc_web.PATH  # gRPC, described in words as the sockets are
        for method in (route.methods or set()) - {"HEAD"}
    }
    in_description = {(path, method.upper()) for path, item in described()["paths"].items() for method in item}
    assert in_app == in_description
    sockets = {route.path for route in app.routes if isinstance(route, WebSocketRoute)} - {"/{path:path}"}
    assert sockets == {"/ws/orders/{orderId}", "/api/orders/execute"}
    assert all(f"`GET {path}" in described()["info"]["description"] for path in sockets)
    assert "`POST /orderengine.v1.OrderService/<Method>`" in described()["info"]["description"]


# Loaded from the file at collection (schemathesis's lazy fixture loader does not run under pytest 9);
# test_served_description_is_the_file proves the bridge serves exactly this.
schema = schemathesis.openapi.from_path(DESCRIPTION)


@pytest.fixture(scope="module")
def session() -> Any:
    with requests.Session() as s:
        yield s


@schema.parametrize()
@fuzz_settings(80)
def test_bridge_answers_as_described(case: Case[Any], bridge: BridgeThread, session: requests.Session) -> None:
    interface = f"HTTP {case.operation.method.upper()} {case.operation.path} (schemathesis)"
    sent = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}"
    try:
        response = case.call(base_url=bridge.http, session=session, timeout=30)
    except requests.ConnectionError:
        TALLY.record(interface, "dropped connection", sent, server_error=True)
        raise
    TALLY.record(interface, str(response.status_code), sent, server_error=response.status_code >= 500)
    case.validate_response(response, checks=CHECKS)


def test_no_bug_logged_by_the_bridge_or_the_server(hostile_stack: Stack, bridge_errors: ErrorRecords) -> None:
    assert_no_bug_logged(hostile_stack, bridge_errors)
