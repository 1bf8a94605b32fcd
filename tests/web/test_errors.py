"""Errors on both adapters: unknown routes, wrong methods, unexpected failures,
and input nobody planned for (never a 500, never a secret)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usercore import SYSTEM

from .clients import ADAPTERS, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Account, Client, Outbox
from .clients import make_core as new_core


def test_an_unknown_route_answers_404_in_the_envelope(client: Client) -> None:
    reply = client.get("/no/such/route")
    assert reply.status == 404
    assert reply.code == "not_found"
    assert client.get("/users/1/unknown", prefix="/api/v1").status == 404


def test_a_wrong_method_answers_405_with_allow(client: Client) -> None:
    reply = client.delete("/auth/login")
    assert reply.status == 405
    assert reply.code == "method_not_allowed"
    assert "POST" in reply.headers["allow"]


def test_an_unexpected_error_answers_a_generic_500_and_is_logged(
    client: Client, admin: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection string postgresql://u:hunter2@db")

    monkeypatch.setattr(client.core.users, "get", explode)
    with caplog.at_level(logging.ERROR, logger="usercore.web"):
        reply = client.get("/users/1", token=admin, headers={"X-Request-ID": "req-42"})
    assert reply.status == 500
    assert reply.body == {
        "error": {
            "code": "internal_error",
            "message": "An internal error occurred.",
            "details": {"request_id": "req-42"},
        }
    }
    assert reply.headers["x-request-id"] == "req-42"
    assert b"hunter2" not in reply.raw
    [record] = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert record.exc_info is not None


def test_a_500_invents_a_request_id_when_none_is_given(
    client: Client, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client.core.roles, "list", lambda actor: 1 / 0)
    reply = client.get("/roles", token=admin, headers={"X-Request-ID": "bad id with spaces"})
    assert reply.status == 500
    request_id = reply.details["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert reply.headers["x-request-id"] == request_id


def test_no_response_or_log_carries_a_password_token_or_hash(
    client: Client, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    replies = []
    with caplog.at_level(logging.DEBUG):
        replies.append(
            client.post("/auth/register", json={"email": "a@example.com", "password": PASSWORD})
        )
        replies.append(
            client.post("/auth/register", json={"email": "a@example.com", "password": PASSWORD})
        )
        replies.append(
            client.post("/auth/login", json={"email": "a@example.com", "password": "wrong" * 4})
        )
        pair = client.post(
            "/auth/login", json={"email": "a@example.com", "password": PASSWORD}
        ).body
        token = pair["access_token"]
        replies.append(client.get("/auth/me", token=token))
        replies.append(client.post("/auth/password-reset", json={"email": "a@example.com"}))
        replies.append(client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
        replies.append(client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}))
        replies.append(client.post("/auth/logout", token=token))
        replies.append(client.get("/auth/me", token=token))
    secrets = [PASSWORD, "wrong" * 4, token, pair["refresh_token"], outbox.resets[0][1], "$argon2"]
    for reply in replies:
        for secret in secrets:
            assert secret.encode() not in reply.raw
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in logged


# -- the two adapters answer alike ---------------------------------------------------------

SCRIPT: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/auth/register", {"json": {"email": "ada@example.com", "password": PASSWORD}}),
    ("POST", "/register", {"json": {"email": "ada@example.com", "password": PASSWORD}}),
    ("POST", "/auth/register", {"json": {"email": "x", "password": "y", "extra": 1}}),
    ("POST", "/auth/register", {"content": b"{", "content_type": "application/json"}),
    ("POST", "/auth/register", {"content": b"{}", "content_type": "text/plain"}),
    ("POST", "/auth/register", {}),
    ("POST", "/auth/login", {"json": {"email": "ada@example.com", "password": "nope"}}),
    ("POST", "/auth/login", {"json": {"password": "x"}}),
    ("POST", "/auth/login", {"form": {"username": "ada@example.com", "grant_type": "x"}}),
    ("POST", "/auth/refresh", {"json": {"refresh_token": 5}}),
    ("GET", "/auth/me", {}),
    ("GET", "/users", {"admin": True}),
    ("GET", "/users?page=1&per_page=1", {"admin": True}),
    ("GET", "/users?per_page=500&page=x&status=y", {"admin": True}),
    ("GET", "/users/abc", {"admin": True}),
    ("GET", "/users/2", {"admin": True}),
    ("PATCH", "/users/2", {"admin": True, "json": {"name": "Ada", "bogus": None}}),
    ("PUT", "/users/2", {"admin": True, "json": {"name": "Ada"}}),
    ("POST", "/users", {"admin": True, "json": {"email": "b@example.com", "role": "nope"}}),
    ("POST", "/users/2/roles", {"admin": True, "json": {"roles": ["admin", 3]}}),
    ("POST", "/users/2/api-keys", {"admin": True, "json": {"name": "k", "expires_in": -1}}),
    ("GET", "/roles/user", {"admin": True}),
    ("PUT", "/roles/user/permissions", {"admin": True, "json": {"permissions": ["x:y"]}}),
    ("DELETE", "/roles/admin", {"admin": True}),
    ("DELETE", "/roles/user?force=yes", {"admin": True}),
    ("GET", "/nowhere", {}),
    ("DELETE", "/auth/me", {}),
]
VOLATILE = re.compile(r'"(created_at|updated_at|last_login_at|retry_after)":("[^"]*"|\d+)')


def _normalized(raw: bytes) -> Any:
    return json.loads(VOLATILE.sub(r'"\1":"*"', raw.decode())) if raw else None


def test_both_adapters_give_the_same_answers_to_the_same_requests() -> None:
    answers: dict[str, list[tuple[int, Any]]] = {}
    for adapter in ADAPTERS:
        with new_core() as core:
            core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
            client = Client(adapter, core, Outbox())
            admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            answers[adapter] = []
            for method, path, options in SCRIPT:
                kwargs = dict(options)
                if kwargs.pop("admin", False):
                    kwargs["token"] = admin
                reply = client.request(method, path, **kwargs)
                answers[adapter].append((reply.status, _normalized(reply.raw)))
    for step, (fastapi, flask) in enumerate(zip(answers["fastapi"], answers["flask"], strict=True)):
        assert fastapi == flask, SCRIPT[step]


# -- input nobody planned for ----------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [
        "email",
        "password",
        "username",
        "name",
        "role",
        "roles",
        "status",
        "token",
        "new_password",
        "refresh_token",
        "identifier",
        "permissions",
        "scopes",
        "expires_in",
        "x",
    ]
)
BODIES = JSON_VALUES | st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=5)
TARGETS = [
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/password-reset"),
    ("POST", "/auth/password-reset/confirm"),
    ("POST", "/auth/verify-email/confirm"),
    ("POST", "/users"),
    ("PATCH", "/users/2"),
    ("POST", "/users/2/roles"),
    ("POST", "/users/2/api-keys"),
    ("POST", "/roles"),
    ("PUT", "/roles/user/permissions"),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_arbitrary_json_bodies_never_cause_a_500(adapter: str) -> None:
    with new_core() as core:
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        core.users.register(email="ada@example.com", password=PASSWORD)
        client = Client(adapter, core, Outbox())
        admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(target=st.sampled_from(TARGETS), body=BODIES)
        def check(target: tuple[str, str], body: Any) -> None:
            method, path = target
            reply = client.request(method, path, json=body, token=admin)
            assert reply.status < 500, (method, path, body, reply.body)
            if reply.status >= 400:
                assert set(reply.error) == {"code", "message", "details"}

        check()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_arbitrary_query_strings_never_cause_a_500(adapter: str) -> None:
    with new_core() as core:
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        client = Client(adapter, core, Outbox())
        admin = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        names = st.sampled_from(["page", "per_page", "cursor", "role", "status", "q", "zzz"])
        values = st.text(max_size=30)

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(params=st.lists(st.tuples(names, values), max_size=4))
        def check(params: list[tuple[str, str]]) -> None:
            from urllib.parse import urlencode

            reply = client.get("/users?" + urlencode(params), token=admin)
            assert reply.status in (200, 400), (params, reply.body)

        check()


def test_the_account_fixture_is_a_plain_user(client: Client, ada: Account) -> None:
    assert client.get("/auth/me", token=ada.token).body["roles"] == ["user"]
