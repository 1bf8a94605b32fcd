"""Applications' own routes on both adapters: the ``Auth`` object ``init_app``
returns (``principal``, ``optional_principal``, ``require(..., owner=...)``)
and its async twin ``AsyncAuth`` over an ``AsyncUserCore``,
the host app's own errors left alone, the hooks, and what importing costs.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime, and they name classes local to the test functions.
"""

import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any

import pytest

from usercore import SYSTEM, Principal, UserCore
from usercore.web._operations import OPERATIONS, V1_ROUTES, Api, Call

from .clients import ADAPTERS, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, make_core


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        core.permissions.register("reports:read", "Read reports")
        core.permissions.register("notes:read", "Read notes")
        core.roles.create(SYSTEM, "analyst", permissions=["reports:read"], inherits=["user"])
        core.roles.set_permissions(
            SYSTEM, "user", [*core.roles.get(SYSTEM, "user").permissions, "notes:read:own"]
        )
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        core.users.create(SYSTEM, email="ana@example.com", password=PASSWORD, roles=["analyst"])
        core.users.register(email="ada@example.com", password=PASSWORD)
        yield core


def bearer(core: UserCore, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {core.auth.login(email, PASSWORD).access_token}"}


# -- the same host app on both adapters ------------------------------------------------------


def fastapi_app(core: UserCore, asynchronous: bool = False) -> Any:
    """The host app; ``asynchronous`` guards its routes with ``AsyncAuth`` over an
    ``AsyncUserCore`` instead of ``Auth``, which must answer every request alike."""
    from fastapi import Depends, FastAPI, HTTPException
    from pydantic import BaseModel

    from usercore.aio import AsyncUserCore
    from usercore.web.fastapi import AsyncAuth, create_router, init_app

    app = FastAPI()
    auth: Any = init_app(app, core)
    if asynchronous:
        auth = AsyncAuth(AsyncUserCore(core))
    app.include_router(create_router(core, prefix="/api/v1"))

    class Note(BaseModel):
        title: str

    @app.get("/whoami")
    def whoami(principal: Annotated[Principal | None, Depends(auth.optional_principal)]) -> Any:
        return {"user_id": None if principal is None else principal.user_id}

    @app.get("/private")
    def private(principal: Annotated[Principal, Depends(auth.principal)]) -> Any:
        return {"user_id": principal.user_id}

    @app.get("/reports")
    def reports(principal: Annotated[Principal, Depends(auth.require("reports:read"))]) -> Any:
        return {"reports": []}

    @app.get("/users/{user_id}/notes")
    def notes(
        user_id: int,
        principal: Annotated[Principal, Depends(auth.require("notes:read", owner="user_id"))],
    ) -> Any:
        return {"owner": user_id}

    @app.get("/notes-by-lambda/{user_id}")
    def notes_by_lambda(
        principal: Annotated[
            Principal,
            Depends(auth.require("notes:read", owner=lambda params: int(params["user_id"]))),
        ],
    ) -> Any:
        return {"ok": True}

    @app.post("/notes")
    def create_note(note: Note) -> Any:
        raise HTTPException(409, "a note with this title exists")

    return app


def flask_app(core: UserCore) -> Any:
    import flask
    from werkzeug.exceptions import Conflict

    from usercore.web.flask import create_blueprint, init_app

    app = flask.Flask("notes")
    auth = init_app(app, core)
    app.register_blueprint(create_blueprint(core), url_prefix="/api/v1")

    @app.get("/whoami")
    def whoami() -> Any:
        principal = auth.optional_principal()
        return {"user_id": None if principal is None else principal.user_id}

    @app.get("/private")
    @auth.require()
    def private() -> Any:
        return {"user_id": auth.principal().user_id}

    @app.get("/reports")
    @auth.require("reports:read")
    def reports() -> Any:
        return {"reports": []}

    @app.get("/users/<int:user_id>/notes")
    @auth.require("notes:read", owner="user_id")
    def notes(user_id: int) -> Any:
        return {"owner": user_id}

    @app.get("/notes-by-lambda/<int:user_id>")
    @auth.require("notes:read", owner=lambda params: params["user_id"])
    def notes_by_lambda(user_id: int) -> Any:
        return {"ok": True}

    @app.post("/notes")
    def create_note() -> Any:
        body = flask.request.get_json(silent=True) or {}
        if not isinstance(body.get("title"), str):
            return {"detail": "title must be a string"}, 422
        raise Conflict("a note with this title exists")

    return app


HOST_APPS = {"fastapi": fastapi_app, "fastapi-async": partial(fastapi_app, asynchronous=True)}


class HostClient:
    """status / json / headers over both frameworks' test clients."""

    def __init__(self, adapter: str, core: UserCore):
        self.adapter = adapter
        if adapter in HOST_APPS:
            from fastapi.testclient import TestClient

            self._client: Any = TestClient(HOST_APPS[adapter](core))
        else:
            self._client = flask_app(core).test_client()

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        reply = (
            self._client.open(path, method=method, **kwargs)
            if self.adapter == "flask"
            else (self._client.request(method, path, **kwargs))
        )
        status = reply.status_code
        body = reply.get_json(silent=True) if self.adapter == "flask" else _json(reply)
        return status, body, reply.headers


def _json(reply: Any) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


@pytest.fixture(params=[*ADAPTERS, "fastapi-async"])
def host(request: pytest.FixtureRequest, core: UserCore) -> HostClient:
    return HostClient(request.param, core)


def test_principal_helpers_authenticate_alike_on_both_adapters(
    host: HostClient, core: UserCore
) -> None:
    user = bearer(core, "ada@example.com")
    assert host.request("GET", "/whoami")[1] == {"user_id": None}
    assert host.request("GET", "/whoami", headers=user)[1] == {"user_id": 3}
    status, body, _ = host.request("GET", "/whoami", headers={"Authorization": "Bearer nope"})
    assert (status, body["error"]["code"]) == (401, "invalid_token")
    status, body, headers = host.request("GET", "/private")
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert host.request("GET", "/private", headers=user)[1] == {"user_id": 3}


def test_require_checks_the_permission(host: HostClient, core: UserCore) -> None:
    status, body, _ = host.request("GET", "/reports", headers=bearer(core, "ada@example.com"))
    assert status == 403
    assert body["error"]["details"] == {"permission": "reports:read"}
    analyst = bearer(core, "ana@example.com")
    assert host.request("GET", "/reports", headers=analyst)[1] == {"reports": []}


@pytest.mark.parametrize("route", ["/users/{}/notes", "/notes-by-lambda/{}"])
def test_require_with_an_owner_lets_own_grants_through_for_the_owner_only(
    host: HostClient, core: UserCore, route: str
) -> None:
    ada = bearer(core, "ada@example.com")
    assert host.request("GET", route.format(3), headers=ada)[0] == 200
    status, body, _ = host.request("GET", route.format(2), headers=ada)
    assert status == 403
    assert body["error"]["code"] == "permission_denied"
    assert host.request("GET", route.format(3))[0] == 401


def test_the_host_apps_own_errors_are_left_alone(host: HostClient, core: UserCore) -> None:
    """Issue 14: init_app formats usercore's errors only; the app's 409 and 422 stay its own."""
    status, body, _ = host.request("POST", "/notes", json={"title": "groceries"})
    assert status == 409
    if host.adapter.startswith("fastapi"):
        assert body == {"detail": "a note with this title exists"}
    else:  # werkzeug's own 409 page, not usercore's envelope
        assert body is None
    status, body, _ = host.request("POST", "/notes", json={"title": 5})
    assert status == 422
    assert "error" not in body
    # ... while usercore's own routes keep usercore's envelope.
    status, body, _ = host.request("POST", "/api/v1/auth/register", json={"email": 1})
    assert status == 400
    assert body["error"]["details"] == {"email": ["must be a string"], "password": ["is required"]}


def test_format_all_errors_opts_in_to_the_envelope_for_the_whole_app(core: UserCore) -> None:
    import flask
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import init_app
    from usercore.web.flask import init_app as init_flask_app

    app = FastAPI()
    init_app(app, core, format_all_errors=True)
    reply = TestClient(app).get("/nowhere")
    assert (reply.status_code, reply.json()["error"]["code"]) == (404, "not_found")
    flask_app = flask.Flask("all")
    init_flask_app(flask_app, core, format_all_errors=True)
    flask_reply = flask_app.test_client().get("/nowhere")
    assert (flask_reply.status_code, flask_reply.json["error"]["code"]) == (404, "not_found")


def test_fastapi_module_helpers_without_init_app_say_what_is_missing(core: UserCore) -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import current_principal

    app = FastAPI()

    @app.get("/private")
    def private(principal: Annotated[Principal, Depends(current_principal)]) -> Any:
        return {}

    with pytest.raises(RuntimeError, match="init_app"):
        TestClient(app).get("/private")


def test_module_level_helpers_follow_the_same_contract_on_both_adapters(core: UserCore) -> None:
    """``current_principal`` returns a Principal or answers 401 in FastAPI and Flask alike."""
    import flask
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from usercore.web import fastapi as fa
    from usercore.web import flask as fl

    app = FastAPI()
    fa.init_app(app, core)

    @app.get("/me")
    def me(principal: Annotated[Principal, Depends(fa.current_principal)]) -> Any:
        return {"user_id": principal.user_id}

    flask_app = flask.Flask("helpers")
    fl.init_app(flask_app, core)

    @flask_app.get("/me")
    def flask_me() -> Any:
        return {"user_id": fl.current_principal().user_id}

    client, flask_client = TestClient(app), flask_app.test_client()
    user = bearer(core, "ada@example.com")
    assert client.get("/me").status_code == flask_client.get("/me").status_code == 401
    assert client.get("/me", headers=user).json() == flask_client.get("/me", headers=user).json
    assert client.get("/me", headers=user).json() == {"user_id": 3}


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


# -- the operations ----------------------------------------------------------------------------


def test_hooks_that_fail_or_are_missing_change_no_answer(
    core: UserCore, caplog: pytest.LogCaptureFixture
) -> None:
    from usercore.web._schemas import PasswordResetRequest

    def broken(*args: object) -> None:
        raise RuntimeError("smtp down")

    operation = OPERATIONS["request_password_reset"]
    known = PasswordResetRequest(email="ada@example.com")
    # Another known address: a second request for one within minutes sends nothing.
    other = PasswordResetRequest(email="ana@example.com")
    unknown = PasswordResetRequest(email="who@example.com")
    failing = operation.run(Call(Api(core, on_password_reset=broken)), None, known, {})
    missing = operation.run(Call(Api(core)), None, other, {})
    absent = operation.run(Call(Api(core)), None, unknown, {})
    assert failing == missing == absent
    assert operation.status == 202
    messages = [record.getMessage() for record in caplog.records]
    assert any("on_password_reset hook failed" in message for message in messages)
    assert any("no on_password_reset hook" in message for message in messages)


def test_every_route_is_unique_and_names_a_declared_operation() -> None:
    pairs = [(method, path) for method, path, _ in V1_ROUTES]
    assert len(pairs) == len(set(pairs))
    assert {name for _, _, name in V1_ROUTES} == set(OPERATIONS)


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        ("usercore.web, usercore.cli", ("fastapi", "flask", "uvicorn", "starlette", "pydantic")),
        ("usercore.web.flask", ("fastapi", "starlette")),  # the Flask extra needs no FastAPI
    ],
)
def test_importing_loads_no_framework_it_does_not_need(
    modules: str, forbidden: tuple[str, ...]
) -> None:
    code = f"import sys, {modules}\nprint(','.join(m for m in {forbidden!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
