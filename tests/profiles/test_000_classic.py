"""Document 000 (``/users``, ``/login``, ``/register`` at the root), followed literally."""

from __future__ import annotations

from .conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Api

PROFILE = "classic"


def login(api: Api, username: str, password: str) -> str:
    reply = api.post("/login", {"username": username, "password": password})
    assert reply.status == 200
    # "A JWT object containing the user's ID and role"
    assert isinstance(reply.body, dict)
    token = reply.body["token"]
    assert isinstance(token, str)
    assert token.count(".") == 2
    return token


def test_register_then_login_with_the_username(api: Api) -> None:
    reply = api.post(
        "/register",
        {
            "username": "newuser",
            "email": "newuser@example.com",
            "password": "a strong new password",
        },
    )
    assert reply.status == 201
    assert isinstance(reply.body, dict)
    assert (reply.body["username"], reply.body["email"]) == ("newuser", "newuser@example.com")
    login(api, "newuser", "a strong new password")


def test_login_failures_are_401(api: Api) -> None:
    wrong = api.post("/login", {"username": ADMIN_USERNAME, "password": "not the password"})
    unknown = api.post("/login", {"username": "nobody", "password": "not the password"})
    assert (wrong.status, unknown.status) == (401, 401)
    assert wrong.body == unknown.body


def test_the_user_endpoints_as_the_document_shows_them(api: Api) -> None:
    token = login(api, ADMIN_USERNAME, ADMIN_PASSWORD)
    created = api.post(
        "/users",
        {
            "username": "classic1",
            "email": "classic1@example.com",
            "password": "a strong new password",
        },
        token,
    )
    assert created.status == 201
    assert isinstance(created.body, dict)
    user_id = created.body["id"]

    listed = api.get("/users", token)
    assert listed.status == 200
    assert isinstance(listed.body, list)  # "A JSON array of user objects"
    assert {"username", "email", "role"} <= set(listed.body[0])
    assert "classic1" in [user["username"] for user in listed.body]

    one = api.get(f"/users/{user_id}", token)
    assert one.status == 200
    assert one.body["username"] == "classic1"

    updated = api.put(
        f"/users/{user_id}",
        {"username": "updateduser", "email": "updateduser@example.com"},
        token,
    )
    assert updated.status == 200
    assert (updated.body["username"], updated.body["email"]) == (
        "updateduser",
        "updateduser@example.com",
    )

    deleted = api.delete(f"/users/{user_id}", token)
    assert (deleted.status, deleted.raw) == (204, b"")
    assert api.get(f"/users/{user_id}", token).status == 404


def test_bad_input_is_400(api: Api) -> None:
    token = login(api, ADMIN_USERNAME, ADMIN_PASSWORD)
    reply = api.post("/users", {"username": "x", "email": "not-an-email", "password": "p"}, token)
    assert reply.status == 400
    assert api.put("/users/1", {"email": "not-an-email"}, token).status == 400
