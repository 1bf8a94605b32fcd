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
from usercore.web._operations import OPERATIONS, V1_ROUTES

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
    for method, path, name in V1_ROUTES:
        route = OPERATIONS[name]
        operation = document["paths"]["/api/v1" + path][method.lower()]
        responses = operation["responses"]
        assert str(route.status) in responses, (method, path)
        assert {"400", "500"} <= set(responses), (method, path)
        if route.auth:
            assert {"401", "403"} <= set(responses), (method, path)
            assert {"usercore_token": []} in operation["security"]
            assert {"usercore_api_key": []} in operation["security"]
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


def test_the_security_schemes_point_at_the_prefix_the_router_is_mounted_under() -> None:
    """Issue 14: Swagger's Authorize button logs in where the API really is."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import create_router, init_app

    app = FastAPI()
    core = make_core()
    init_app(app, core, prefix="/idp")
    app.include_router(create_router(core, prefix="/idp"))
    document = TestClient(app).get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["usercore_token"]["flows"]["password"]["tokenUrl"] == "/idp/auth/login"
    assert "/idp/auth/me" in document["paths"]


def test_each_body_is_documented_from_its_one_model(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for method, path, name in V1_ROUTES:
        route = OPERATIONS[name]
        if route.input is None or route.source != "body" or name == "login":
            continue
        operation = document["paths"]["/api/v1" + path][method.lower()]
        content = operation["requestBody"]["content"]["application/json"]["schema"]
        if "anyOf" in content:  # an optional body: Model | None
            content = next(option for option in content["anyOf"] if "$ref" in option)
        schema = schemas[content["$ref"].rsplit("/", 1)[1]]
        assert schema["additionalProperties"] is False, name
        assert set(schema.get("properties", {})) == set(route.input.model_fields), name
        required = {key for key, field in route.input.model_fields.items() if field.is_required()}
        assert set(schema.get("required", [])) == required, name


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
