"""Issue 16: an async FastAPI app on ``AsyncUserCore`` and ``AsyncAuth`` passes the same
auth scenario as the sync one (``UserCore`` and ``Auth``), with the same answers.

Each app is the same small "notes" service: its own register, login, refresh,
``/me``, permission-, owner- and API-key-guarded routes.  The scenario runs
against each, checking every status; then the two transcripts (status, body
and the ``WWW-Authenticate`` and ``Retry-After`` headers of every step) must
be equal, byte for byte once the random secrets are masked.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime.
"""

import warnings
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import pytest

from tests.services.conftest import ADMIN_PASSWORD, PASSWORD, FakeClock, make_settings
from usercore import SYSTEM, Principal, UserCore
from usercore.aio import AsyncUserCore
from usercore.web import CookieSessions

fastapi = pytest.importorskip("fastapi")
with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from fastapi import Body, Depends, FastAPI  # noqa: E402

from usercore.web.fastapi import AsyncAuth, Auth, create_router, init_app  # noqa: E402

MODES = ("sync", "async")
SECRETS = frozenset({"access_token", "refresh_token", "key"})
SESSIONS = CookieSessions(secure=False)  # the test client speaks plain HTTP
Json = dict[str, Any]


def make_core(clock: FakeClock) -> UserCore:
    core = UserCore.open("memory://", settings=make_settings(), clock=clock)
    core.permissions.register("reports:read", "Read reports")
    core.permissions.register("notes:read", "Read notes")
    core.roles.create(SYSTEM, "analyst", permissions=["reports:read"], inherits=["user"])
    core.roles.set_permissions(
        SYSTEM, "user", [*core.roles.get(SYSTEM, "user").permissions, "notes:read:own"]
    )
    core.users.create(SYSTEM, email="root@example.com", password=ADMIN_PASSWORD, roles=["admin"])
    core.users.create(SYSTEM, email="ana@example.com", password=PASSWORD, roles=["analyst"])
    return core


def sync_app(core: UserCore, sessions: CookieSessions | None = None) -> FastAPI:
    """The notes service as plain ``def`` routes on ``UserCore`` and ``Auth``."""
    app = FastAPI()
    auth: Auth = init_app(app, core, sessions=sessions)
    app.include_router(create_router(core, prefix="/api/v1", sessions=sessions))

    @app.post("/register", status_code=201)
    def register(body: Annotated[dict[str, str], Body()]) -> Json:
        return core.users.register(**body).to_public()

    @app.post("/login")
    def login(body: Annotated[dict[str, str], Body()]) -> Json:
        pair = core.auth.login(body["identifier"], body["password"])
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}

    @app.post("/refresh")
    def refresh(body: Annotated[dict[str, str], Body()]) -> Json:
        pair = core.auth.refresh(body["refresh_token"])
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}

    @app.get("/me")
    def me(principal: Annotated[Principal, Depends(auth.principal)]) -> Json:
        assert principal.user_id is not None
        return core.users.get(principal, principal.user_id).to_public()

    @app.get("/whoami")
    def whoami(principal: Annotated[Principal | None, Depends(auth.optional_principal)]) -> Json:
        return {"user_id": None if principal is None else principal.user_id}

    @app.get("/reports")
    def reports(principal: Annotated[Principal, Depends(auth.require("reports:read"))]) -> Json:
        return {"reports": [], "by": principal.user_id}

    @app.get("/users/{user_id}/notes")
    def notes(
        user_id: int,
        principal: Annotated[Principal, Depends(auth.require("notes:read", owner="user_id"))],
    ) -> Json:
        return {"owner": user_id, "notes": []}

    @app.post("/api-keys", status_code=201)
    def create_key(
        principal: Annotated[Principal, Depends(auth.principal)],
        body: Annotated[dict[str, list[str]], Body()],
    ) -> Json:
        assert principal.user_id is not None
        _, key = core.api_keys.create(
            principal, principal.user_id, name="cron", scopes=body["scopes"]
        )
        return {"key": key}

    @app.post("/notes", status_code=201)
    def add_note(principal: Annotated[Principal, Depends(auth.principal)]) -> Json:
        return {"by": principal.user_id}

    return app


def async_app(core: UserCore, sessions: CookieSessions | None = None) -> FastAPI:
    """The same notes service as ``async def`` routes on ``AsyncUserCore`` and ``AsyncAuth``."""
    acore = AsyncUserCore(core)
    app = FastAPI()
    init_app(app, core, sessions=sessions)
    auth = AsyncAuth(acore, sessions=sessions)
    app.include_router(create_router(core, prefix="/api/v1", sessions=sessions))

    @app.post("/register", status_code=201)
    async def register(body: Annotated[dict[str, str], Body()]) -> Json:
        return (await acore.users.register(**body)).to_public()

    @app.post("/login")
    async def login(body: Annotated[dict[str, str], Body()]) -> Json:
        pair = await acore.auth.login(body["identifier"], body["password"])
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}

    @app.post("/refresh")
    async def refresh(body: Annotated[dict[str, str], Body()]) -> Json:
        pair = await acore.auth.refresh(body["refresh_token"])
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}

    @app.get("/me")
    async def me(principal: Annotated[Principal, Depends(auth.principal)]) -> Json:
        assert principal.user_id is not None
        return (await acore.users.get(principal, principal.user_id)).to_public()

    @app.get("/whoami")
    async def whoami(
        principal: Annotated[Principal | None, Depends(auth.optional_principal)],
    ) -> Json:
        return {"user_id": None if principal is None else principal.user_id}

    @app.get("/reports")
    async def reports(
        principal: Annotated[Principal, Depends(auth.require("reports:read"))],
    ) -> Json:
        return {"reports": [], "by": principal.user_id}

    @app.get("/users/{user_id}/notes")
    async def notes(
        user_id: int,
        principal: Annotated[Principal, Depends(auth.require("notes:read", owner="user_id"))],
    ) -> Json:
        return {"owner": user_id, "notes": []}

    @app.post("/api-keys", status_code=201)
    async def create_key(
        principal: Annotated[Principal, Depends(auth.principal)],
        body: Annotated[dict[str, list[str]], Body()],
    ) -> Json:
        assert principal.user_id is not None
        _, key = await acore.api_keys.create(
            principal, principal.user_id, name="cron", scopes=body["scopes"]
        )
        return {"key": key}

    @app.post("/notes", status_code=201)
    async def add_note(principal: Annotated[Principal, Depends(auth.principal)]) -> Json:
        return {"by": principal.user_id}

    return app


APPS: dict[str, Callable[..., FastAPI]] = {"sync": sync_app, "async": async_app}


class Recorder:
    """Sends requests, checks each status and keeps a transcript with secrets masked."""

    def __init__(self, client: TestClient):
        self.client = client
        self.transcript: list[tuple[str, int, Any, str | None, str | None]] = []

    def __call__(self, expected: int, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.client.request(method, path, **kwargs)
        body = reply.json() if reply.content else None
        assert reply.status_code == expected, (method, path, body)
        masked = body
        if isinstance(body, dict):
            assert all(body[name] for name in SECRETS & set(body))
            masked = {k: "<secret>" if k in SECRETS else v for k, v in body.items()}
        self.transcript.append(
            (
                f"{method} {path}",
                reply.status_code,
                masked,
                reply.headers.get("www-authenticate"),
                reply.headers.get("retry-after"),
            )
        )
        return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_scenario(mode: str) -> list[Any]:
    """The whole scenario on a fresh core and app; returns the transcript."""
    clock = FakeClock()
    with make_core(clock) as core, TestClient(APPS[mode](core)) as client:
        send = Recorder(client)
        ada_login = {"identifier": "ada", "password": PASSWORD}

        # Anonymous: principal refuses with a Bearer challenge, optional_principal is None.
        send(401, "GET", "/me")
        send(200, "GET", "/whoami")

        # Register and log in; the errors are the core's, answered alike.
        ada = send(
            201,
            "POST",
            "/register",
            json={"email": "ada@example.com", "password": PASSWORD, "username": "ada"},
        )
        send(409, "POST", "/register", json={"email": "ada@example.com", "password": PASSWORD})
        send(400, "POST", "/register", json={"email": "not an email", "password": "short"})
        send(401, "POST", "/login", json={"identifier": "ada", "password": "not the password!"})
        send(401, "POST", "/login", json={"identifier": "nobody", "password": PASSWORD})
        pair = send(200, "POST", "/login", json=ada_login)
        ada_headers = bearer(pair["access_token"])

        # principal and optional_principal.
        assert send(200, "GET", "/me", headers=ada_headers)["id"] == ada["id"]
        assert send(200, "GET", "/whoami", headers=ada_headers) == {"user_id": ada["id"]}
        send(401, "GET", "/me", headers=bearer("garbage"))
        send(401, "GET", "/whoami", headers=bearer("garbage"))
        send(401, "GET", "/me", headers={"Authorization": "Basic YWRhOnB3"})
        send(401, "GET", "/me", headers={"Authorization": "Bearer "})

        # require(permission): 403 with the permission named, then allowed.
        send(403, "GET", "/reports", headers=ada_headers)
        send(401, "GET", "/reports")
        analyst = send(
            200, "POST", "/login", json={"identifier": "ana@example.com", "password": PASSWORD}
        )
        send(200, "GET", "/reports", headers=bearer(analyst["access_token"]))

        # require(..., owner=...): a ":own" grant passes for the owner only.
        send(200, "GET", f"/users/{ada['id']}/notes", headers=ada_headers)
        send(403, "GET", "/users/1/notes", headers=ada_headers)

        # API keys, by X-API-Key and by Bearer uc_...; scopes narrow the grants.
        key = send(
            201, "POST", "/api-keys", headers=ada_headers, json={"scopes": ["users:read:own"]}
        )["key"]
        assert send(200, "GET", "/me", headers={"X-API-Key": key})["id"] == ada["id"]
        send(200, "GET", "/whoami", headers=bearer(key))
        send(403, "GET", f"/users/{ada['id']}/notes", headers={"X-API-Key": key})
        send(401, "GET", "/me", headers={"X-API-Key": "uc_not_a_key"})

        # Refresh rotates; a replayed refresh token is refused.
        renewed = send(200, "POST", "/refresh", json={"refresh_token": pair["refresh_token"]})
        send(401, "POST", "/refresh", json={"refresh_token": pair["refresh_token"]})

        # An expired access token is a 401; a fresh login works again.
        clock.advance(minutes=16)
        send(401, "GET", "/me", headers=bearer(renewed["access_token"]))
        pair = send(200, "POST", "/login", json=ada_login)
        send(200, "GET", "/me", headers=bearer(pair["access_token"]))

        # Lockout after repeated failures: 429 with Retry-After.
        for _ in range(core.settings.lockout_threshold):
            send(
                401,
                "POST",
                "/login",
                json={"identifier": "ana@example.com", "password": "wrong password!!"},
            )
        send(429, "POST", "/login", json={"identifier": "ana@example.com", "password": PASSWORD})
        return send.transcript


@pytest.mark.parametrize("mode", MODES)
def test_the_auth_scenario_passes(mode: str) -> None:
    assert len(run_scenario(mode)) > 30


def test_the_async_app_answers_the_scenario_exactly_as_the_sync_app() -> None:
    sync, concurrent = run_scenario("sync"), run_scenario("async")
    assert len(sync) == len(concurrent)
    for step, (expected, actual) in enumerate(zip(sync, concurrent, strict=True)):
        assert expected == actual, f"step {step}"


# -- cookie sessions and CSRF -------------------------------------------------------------


@pytest.fixture(params=MODES)
def browser(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with make_core(FakeClock()) as core:
        core.users.register(email="ada@example.com", password=PASSWORD)
        with TestClient(APPS[request.param](core, SESSIONS)) as client:
            reply = client.post(
                "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
            )
            assert reply.status_code == 200
            yield client


def test_a_cookie_session_authenticates_and_unsafe_requests_need_the_csrf_token(
    browser: TestClient,
) -> None:
    assert browser.get("/whoami").json() == {"user_id": 3}
    refused = browser.post("/notes")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    wrong = browser.post("/notes", headers={"X-CSRF-Token": "not the cookie"})
    assert wrong.status_code == 403
    csrf = browser.cookies.get("usercore_csrf")
    assert csrf
    accepted = browser.post("/notes", headers={"X-CSRF-Token": csrf})
    assert (accepted.status_code, accepted.json()) == (201, {"by": 3})
    # A bearer request never needs the CSRF token, cookie or not.
    token = browser.cookies.get("usercore_access")
    assert token
    assert browser.post("/notes", headers=bearer(token)).status_code == 201


# -- the OpenAPI document --------------------------------------------------------------


def test_async_dependencies_declare_the_same_security_schemes() -> None:
    with make_core(FakeClock()) as core:
        sync, concurrent = sync_app(core).openapi(), async_app(core).openapi()
    assert sync["components"]["securitySchemes"] == concurrent["components"]["securitySchemes"]
    for path in ("/me", "/whoami", "/reports", "/users/{user_id}/notes"):
        (method,) = sync["paths"][path]
        assert concurrent["paths"][path][method].get("security") == sync["paths"][path][method].get(
            "security"
        ), path
    assert sync["paths"]["/me"]["get"]["security"]


def test_async_auth_takes_the_sync_auths_defaults() -> None:
    import inspect

    sync = inspect.signature(Auth).parameters
    concurrent = inspect.signature(AsyncAuth).parameters
    assert list(sync) == list(concurrent)
    assert [p.default for p in sync.values()] == [p.default for p in concurrent.values()]


def test_async_auth_refuses_a_sync_core() -> None:
    with make_core(FakeClock()) as core, pytest.raises(TypeError, match="AsyncUserCore"):
        AsyncAuth(core)  # type: ignore[arg-type]
