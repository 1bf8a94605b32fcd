"""Issue 12 items 10 and 17: caching of secrets, security headers, API docs.

RFC 6749 §5.1: an answer carrying a token MUST say ``Cache-Control:
no-store`` and ``Pragma: no-cache``.  OWASP ASVS 4.0.3 V14.4.4
(``X-Content-Type-Options: nosniff``), V14.4.5/V14.4.7 (no framing: CSP
``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), V14.4.6
(``Referrer-Policy``); V14.2.3 / V10.3.2: no script from a CDN without
subresource integrity, so Swagger UI is off unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web.clients import (
    ADAPTERS,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Client,
    Outbox,
    Reply,
    make_core,
)
from usercore import SYSTEM


@pytest.fixture(params=ADAPTERS)
def client(request: pytest.FixtureRequest) -> Iterator[tuple[Client, Outbox]]:
    with make_core() as core:
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        outbox = Outbox()
        yield Client(request.param, core, outbox), outbox


def assert_not_cached(reply: Reply) -> None:
    assert reply.headers["cache-control"] == "no-store", reply.headers
    assert reply.headers["pragma"] == "no-cache"


def test_every_answer_that_carries_a_token_or_key_is_not_cached(
    client: tuple[Client, Outbox],
) -> None:
    http, outbox = client
    http.register("ada@example.com")
    login = http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert_not_cached(login)
    token = login.body["access_token"]
    refresh = http.post("/auth/refresh", json={"refresh_token": login.body["refresh_token"]})
    assert_not_cached(refresh)
    token = refresh.body["access_token"]
    me = http.get("/auth/me", token=token).body
    key = http.post(
        f"/users/{me['id']}/api-keys",
        json={"name": "ci", "current_password": PASSWORD},
        token=token,
    )
    assert key.status == 201
    assert_not_cached(key)
    http.post("/auth/verify-email", token=token)
    [(_, verification)] = outbox.verifications
    assert_not_cached(http.post("/auth/verify-email/confirm", json={"token": verification}))
    assert_not_cached(http.post("/auth/password-reset", json={"email": "ada@example.com"}))
    [(_, reset)] = outbox.resets
    confirm = http.post(
        "/auth/password-reset/confirm", json={"token": reset, "new_password": PASSWORD + "!"}
    )
    assert confirm.status == 204
    assert_not_cached(confirm)
    # A failed login is not a token answer, but must not be cached either way.
    assert http.post("/auth/login", json={"email": "x@example.com", "password": "x"}).status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/me"),
        ("POST", "/auth/login"),
        ("GET", "/nowhere"),
        ("DELETE", "/auth/login"),
        ("POST", "/auth/register"),
    ],
)
def test_every_answer_carries_the_security_headers(
    client: tuple[Client, Outbox], method: str, path: str
) -> None:
    http, _ = client
    reply = http.request(method, path, json={"email": 1})
    assert reply.status >= 400
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["content-security-policy"] == "frame-ancestors 'none'"
    ok = http.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert ok.status == 201
    assert ok.headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_is_off_unless_asked_for_and_docs_can_be_turned_off() -> None:
    from fastapi.testclient import TestClient

    from usercore.web.fastapi import create_app

    core = make_core()
    default = TestClient(create_app(core))
    assert default.get("/docs").status_code == 404
    assert default.get("/openapi.json").status_code == 200
    none = TestClient(create_app(core, docs=False))
    assert none.get("/openapi.json").status_code == 404
    assert none.get("/docs").status_code == 404
    ui = TestClient(create_app(core, docs_ui=True))
    assert ui.get("/docs").status_code == 200
