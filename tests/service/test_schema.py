"""Property-based tests of the HTTP API against its own OpenAPI schema (schemathesis):
whatever a client sends, the answer is documented, well-formed and never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from veil.service import ServiceSettings, create_app  # noqa: E402

TOKEN = "schema-token-0123456789"
APP = create_app(ServiceSettings(token=TOKEN, max_image_bytes=1_000_000, max_pixels=2_000_000))
SCHEMA = schemathesis.openapi.from_asgi(  # the schema, too, needs the token
    "/openapi.json", APP, headers={"Authorization": f"Bearer {TOKEN}"}
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    APP.state.service.close()


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_schema(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)


@SCHEMA.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_without_token_is_refused(case: Any) -> None:
    response = case.call()
    if case.path == "/api/health":  # open; explicit examples also try other methods (405)
        assert response.status_code in (200, 405)
    else:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
