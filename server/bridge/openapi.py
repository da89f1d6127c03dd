"""The bridge's OpenAPI 3.1 description, served at /openapi.json from the one copy in docs/openapi.yaml.

`openapi.yaml` beside this module is a symbolic link to that file, so a wheel carries its content too.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

DESCRIPTION = Path(__file__).with_name("openapi.yaml")


@functools.cache
def load() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DESCRIPTION.read_text(encoding="utf-8"))
    return document


async def description(request: Request) -> Response:
    """GET /openapi.json: import it into Postman or Insomnia, or generate a client from it."""
    return JSONResponse(load())
