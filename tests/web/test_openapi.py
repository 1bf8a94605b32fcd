"""The OpenAPI document: complete, in step with the neutral layer, and true.

schemathesis generates requests from FastAPI's ``/openapi.json`` (valid and
invalid ones) and checks every answer: no 500, a documented status, and a body
that matches the documented schema.  The Flask adapter is held to the same
document.  Examples per operation are few, so the whole run takes seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from usercore import SYSTEM, TokenError, UserCore
from usercore.web import ROUTES

from .clients import ADMIN_EMAIL, ADMIN_PASSWORD, Outbox, make_core

MAX_EXAMPLES = 8


class Admin:
    """An administrator's credentials that survive the generated requests.

    A generated ``DELETE /users/1`` or logout may remove the account or end the
    session; the next case then gets a fresh one.
    """

    def __init__(self, core: UserCore):
        self.core = core
        self.token = ""

    def headers(self) -> dict[str, str]:
        try:
            principal = self.core.auth.authenticate(self.token)
            if "admin" not in principal.roles:
                raise TokenError()
        except TokenError:
            try:
                user = self.core.users.get_by_email(SYSTEM, ADMIN_EMAIL)
                self.core.users.update(SYSTEM, user.id, roles=["admin"], status="active")
                self.core.users.set_password(SYSTEM, user.id, ADMIN_PASSWORD)
            except Exception:
                self.core.users.create(
                    SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"]
                )
            self.token = self.core.auth.login(ADMIN_EMAIL, ADMIN_PASSWORD).access_token
        return {"Authorization": f"Bearer {self.token}"}


def make_app(adapter: str) -> tuple[Any, Admin]:
    """An app of ``adapter`` on a fresh in-memory core, and its administrator."""
    core = make_core()
    outbox = Outbox()
    hooks: dict[str, Any] = {
        "on_password_reset": outbox.reset,
        "on_email_verification": outbox.verify,
    }
    if adapter == "fastapi":
        from usercore.web.fastapi import create_app

        return create_app(core, **hooks), Admin(core)
    from usercore.web.flask import create_app as create_flask_app

    return create_flask_app(core, **hooks), Admin(core)


# schemathesis parametrizes at collection time, so the apps are built on import
# (in memory, in milliseconds).  Its lazy fixture loader needs a pytest private
# that pytest 9 removed.
FASTAPI_APP, FASTAPI_ADMIN = make_app("fastapi")
FLASK_APP, FLASK_ADMIN = make_app("flask")
fastapi_schema = schemathesis.openapi.from_asgi("/openapi.json", FASTAPI_APP)
# The Flask adapter serves no document of its own: it is held to FastAPI's.
flask_schema = schemathesis.openapi.from_dict(fastapi_schema.raw_schema)
flask_schema.app = FLASK_APP


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from fastapi.testclient import TestClient

    reply = TestClient(FASTAPI_APP).get("/openapi.json")
    assert reply.status_code == 200
    openapi: dict[str, Any] = reply.json()
    return openapi


# -- the document -------------------------------------------------------------------------


def test_every_route_and_alias_is_documented_with_its_status(document: dict[str, Any]) -> None:
    for route in ROUTES:
        for path in route.paths:
            for method in route.methods:
                operation = document["paths"]["/api/v1" + path][method.lower()]
                responses = operation["responses"]
                assert str(route.status) in responses, (method, path)
                assert {"400", "500"} <= set(responses), (method, path)
                if route.auth:
                    assert {"401", "403"} <= set(responses), (method, path)
                    assert operation["security"] == [
                        {"usercore_token": []},
                        {"usercore_api_key": []},
                    ]
                for status, response in responses.items():
                    if status.startswith(("4", "5")):
                        schema = response["content"]["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_the_login_form_works_with_the_docs_authorize_button(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["usercore_token"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/login"
    assert schemes["usercore_api_key"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    body = document["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-www-form-urlencoded"}


def test_the_pydantic_bodies_match_the_neutral_field_rules(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for route in ROUTES:
        if route.body is None or route.name == "login":
            continue
        operation = document["paths"]["/api/v1" + route.paths[0]][route.methods[0].lower()]
        content = operation["requestBody"]["content"]["application/json"]["schema"]
        if "anyOf" in content:  # an optional body: Model | None
            content = next(option for option in content["anyOf"] if "$ref" in option)
        schema = schemas[content["$ref"].rsplit("/", 1)[1]]
        assert schema["additionalProperties"] is False, route.name
        assert set(schema.get("properties", {})) == set(route.body), route.name
        required = {name for name, spec in route.body.items() if spec.required}
        assert set(schema.get("required", [])) == required, route.name


# -- schemathesis ---------------------------------------------------------------------------


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
FAST = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@fastapi_schema.parametrize()
@FAST
def test_the_fastapi_app_keeps_its_openapi_document(case: Any) -> None:
    case.call_and_validate(headers=FASTAPI_ADMIN.headers(), checks=CHECKS)


@flask_schema.parametrize()
@FAST
def test_the_flask_app_keeps_the_same_openapi_document(case: Any) -> None:
    case.call_and_validate(headers=FLASK_ADMIN.headers(), checks=CHECKS)
