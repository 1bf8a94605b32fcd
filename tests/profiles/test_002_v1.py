"""Document 002 (``/api/v1``, the error envelope), followed literally: the ``v1`` profile."""

from __future__ import annotations

from typing import Any

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

PROFILE = "v1"
BASE = "/api/v1"


def login(api: Api, email: str, password: str) -> dict[str, Any]:
    reply = api.post(f"{BASE}/auth/login", {"email": email, "password": password})
    assert reply.status == 200
    assert isinstance(reply.body, dict)
    return reply.body


def assert_envelope(body: Any) -> None:
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], dict)


def test_the_user_endpoints_as_the_document_shows_them(api: Api) -> None:
    token = login(api, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    created = api.post(
        f"{BASE}/users",
        {"username": "doc002", "email": "doc002@example.com", "password": "password one"},
        token,
    )
    assert created.status == 201
    user_id = created.body["id"]

    one = api.get(f"{BASE}/users/{user_id}", token)
    assert one.status == 200
    assert one.body["username"] == "doc002"

    updated = api.put(
        f"{BASE}/users/{user_id}",
        {"username": "doc002b", "email": "doc002b@example.com", "password": "password two"},
        token,
    )
    assert updated.status == 200
    assert updated.body["username"] == "doc002b"
    login(api, "doc002b@example.com", "password two")
    assert (
        api.post(
            f"{BASE}/auth/login", {"email": "doc002b@example.com", "password": "password one"}
        ).status
        == 401
    )

    deleted = api.delete(f"{BASE}/users/{user_id}", token)
    assert (deleted.status, deleted.raw) == (204, b"")
    for reply in (
        api.get(f"{BASE}/users/{user_id}", token),
        api.put(f"{BASE}/users/{user_id}", {"username": "gone"}, token),
        api.delete(f"{BASE}/users/{user_id}", token),
    ):
        assert reply.status == 404
        assert_envelope(reply.body)


def test_invalid_input_is_400_in_the_envelope(api: Api) -> None:
    token = login(api, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    reply = api.post(f"{BASE}/users", {"username": "x", "email": "nope", "password": "p"}, token)
    assert reply.status == 400
    assert_envelope(reply.body)


def test_login_and_logout(api: Api) -> None:
    bad = api.post(f"{BASE}/auth/login", {"email": ADMIN_EMAIL, "password": "wrong"})
    assert bad.status == 401
    assert_envelope(bad.body)
    token = login(api, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    out = api.post(f"{BASE}/auth/logout", token=token)
    assert out.status == 200  # "200 OK: Logout successful."
    assert api.get(f"{BASE}/users/1", token).status == 401  # the token was invalidated
