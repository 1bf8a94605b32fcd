"""Applications' own routes: FastAPI dependencies and Flask decorators, routers
and blueprints mounted by hand, the hooks, and what importing costs.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime, and they name classes local to the test functions.
"""

import subprocess
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import pytest

from usercore import SYSTEM, Principal, UserCore
from usercore.web import HttpApi, HttpRequest

from .clients import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, make_core


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        core.permissions.register("reports:read", "Read reports")
        core.roles.create(SYSTEM, "analyst", permissions=["reports:read"], inherits=["user"])
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        core.users.create(SYSTEM, email="ana@example.com", password=PASSWORD, roles=["analyst"])
        core.users.register(email="ada@example.com", password=PASSWORD)
        yield core


def bearer(core: UserCore, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {core.auth.login(email, PASSWORD).access_token}"}


# -- FastAPI ------------------------------------------------------------------------------


def fastapi_app(core: UserCore) -> Any:
    from fastapi import Depends, FastAPI
    from pydantic import BaseModel

    from usercore.web.fastapi import (
        create_router,
        current_principal,
        init_app,
        optional_principal,
        require,
    )

    app = FastAPI()
    init_app(app, core)
    app.include_router(create_router(core, prefix="/api/v1"))

    class Report(BaseModel):
        title: str

    @app.get("/whoami")
    def whoami(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Any:
        return {"user_id": None if principal is None else principal.user_id}

    @app.get("/private")
    def private(principal: Annotated[Principal, Depends(current_principal)]) -> Any:
        return {"user_id": principal.user_id}

    @app.post("/reports")
    def reports(
        report: Report, principal: Annotated[Principal, Depends(require("reports:read"))]
    ) -> Any:
        return {"title": report.title, "by": principal.user_id}

    return app


def test_fastapi_dependencies_authenticate_and_authorize(core: UserCore) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(fastapi_app(core))
    analyst, user = bearer(core, "ana@example.com"), bearer(core, "ada@example.com")
    assert client.get("/whoami").json() == {"user_id": None}
    assert client.get("/whoami", headers=user).json()["user_id"] == 3
    invalid = client.get("/whoami", headers={"Authorization": "Bearer nope"})
    assert invalid.status_code == 401
    assert invalid.json()["error"]["code"] == "invalid_token"
    anonymous = client.get("/private")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert client.get("/private", headers=user).json() == {"user_id": 3}
    denied = client.post("/reports", json={"title": "Q3"}, headers=user)
    assert denied.status_code == 403
    assert denied.json()["error"]["details"] == {"permission": "reports:read"}
    assert client.post("/reports", json={"title": "Q3"}, headers=analyst).json() == {
        "title": "Q3",
        "by": 2,
    }


def test_fastapi_apps_own_validation_errors_get_the_envelope(core: UserCore) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(fastapi_app(core))
    reply = client.post(
        "/reports", json={"title": 5, "x": 1}, headers=bearer(core, "ana@example.com")
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "validation_failed"
    assert reply.json()["error"]["details"] == {"title": ["must be a string"]}
    assert client.get("/api/v1/auth/me", headers=bearer(core, "ada@example.com")).status_code == 200


def test_a_router_alone_still_answers_its_errors_in_the_envelope(core: UserCore) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import create_router

    app = FastAPI()
    app.include_router(create_router(core), prefix="/users-api")
    client = TestClient(app)
    reply = client.post("/users-api/auth/register", json={"email": 1})
    assert reply.status_code == 400
    assert reply.json()["error"]["details"] == {
        "email": ["must be a string"],
        "password": ["is required"],
    }
    assert (
        client.post(
            "/users-api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).status_code
        == 200
    )


def test_fastapi_dependencies_without_init_app_say_what_is_missing(core: UserCore) -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import current_principal

    app = FastAPI()

    @app.get("/private")
    def private(principal: Annotated[Principal, Depends(current_principal)]) -> Any:
        return {}

    with pytest.raises(RuntimeError, match="init_app"):
        TestClient(app).get("/private")


def test_the_openapi_login_form_points_at_the_prefixed_login(core: UserCore) -> None:
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import create_app

    document = TestClient(create_app(core, prefix="/auth-api")).get("/openapi.json").json()
    flows = document["components"]["securitySchemes"]["usercore_token"]["flows"]
    assert flows["password"]["tokenUrl"] == "/auth-api/auth/login"
    assert "/auth-api/auth/me" in document["paths"]


# -- Flask ---------------------------------------------------------------------------------


def flask_app(core: UserCore) -> Any:
    import flask

    from usercore.web.flask import (
        create_blueprint,
        current_principal,
        init_app,
        login_required,
        permission_required,
    )

    app = flask.Flask("reports")
    init_app(app, core)
    app.register_blueprint(create_blueprint(core), url_prefix="/api/v1")

    @app.get("/whoami")
    def whoami() -> Any:
        principal = current_principal()
        return {"user_id": None if principal is None else principal.user_id}

    @app.get("/private")
    @login_required
    def private() -> Any:
        principal = current_principal()
        assert principal is not None
        return {"user_id": principal.user_id}

    @app.get("/reports")
    @permission_required("reports:read")
    def reports() -> Any:
        return {"reports": []}

    return app


def test_flask_decorators_authenticate_and_authorize(core: UserCore) -> None:
    client = flask_app(core).test_client()
    analyst, user = bearer(core, "ana@example.com"), bearer(core, "ada@example.com")
    assert client.get("/whoami").json == {"user_id": None}
    assert client.get("/whoami", headers=user).json == {"user_id": 3}
    invalid = client.get("/whoami", headers={"Authorization": "Bearer nope"})
    assert invalid.status_code == 401
    assert invalid.json["error"]["code"] == "invalid_token"
    anonymous = client.get("/private")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/private", headers=user).json == {"user_id": 3}
    denied = client.get("/reports", headers=user)
    assert denied.status_code == 403
    assert denied.json["error"]["code"] == "permission_denied"
    assert client.get("/reports", headers=analyst).json == {"reports": []}
    assert client.get("/api/v1/auth/me", headers=user).json["email"] == "ada@example.com"


def test_a_blueprint_alone_sets_the_core_up_for_the_decorators(core: UserCore) -> None:
    import flask

    from usercore.web.flask import create_blueprint, login_required

    app = flask.Flask("plain")
    app.register_blueprint(create_blueprint(core), url_prefix="/u")

    @app.get("/private")
    @login_required
    def private() -> Any:
        return {"ok": True}

    client = app.test_client()
    assert client.get("/private").status_code == 401
    assert client.get("/private", headers=bearer(core, "ada@example.com")).json == {"ok": True}
    assert client.post("/u/auth/register", json={}).status_code == 400


# -- the neutral layer -----------------------------------------------------------------------


def test_hooks_that_fail_or_are_missing_change_no_answer(
    core: UserCore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("smtp down")

    request = HttpRequest(method="POST", headers={}, body={"email": "ada@example.com"})
    unknown = HttpRequest(method="POST", headers={}, body={"email": "who@example.com"})
    failing = HttpApi(core, on_password_reset=broken).dispatch("request_password_reset", request)
    missing = HttpApi(core).dispatch("request_password_reset", request)
    absent = HttpApi(core).dispatch("request_password_reset", unknown)
    assert failing == missing == absent
    assert failing.status == 202
    messages = [record.getMessage() for record in caplog.records]
    assert any("on_password_reset hook failed" in message for message in messages)
    assert any("no on_password_reset hook" in message for message in messages)


def test_every_route_has_a_unique_name_method_and_path() -> None:
    from usercore.web import ROUTES

    names = [route.name for route in ROUTES]
    assert len(names) == len(set(names))
    pairs = [(method, path) for route in ROUTES for method in route.methods for path in route.paths]
    assert len(pairs) == len(set(pairs))


def test_importing_usercore_web_or_the_cli_imports_no_framework() -> None:
    code = (
        "import sys, usercore.web, usercore.cli\n"
        "loaded = [m for m in ('fastapi', 'flask', 'uvicorn', 'starlette', 'pydantic')"
        " if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
