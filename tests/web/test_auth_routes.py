"""DESIGN §8, the /auth routes, on both adapters: register, login, refresh,
logout, me, password reset and email verification."""

from __future__ import annotations

import pytest

from .clients import ADMIN_EMAIL, PASSWORD, Account, Client, Outbox

USER_KEYS = {
    "id",
    "email",
    "username",
    "name",
    "role",
    "roles",
    "status",
    "email_verified",
    "created_at",
    "updated_at",
    "last_login_at",
}
PAIR_KEYS = {"access_token", "refresh_token", "token_type", "expires_in"}


# -- register -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/register", "/register"])
def test_register_answers_201_with_the_public_user(client: Client, path: str) -> None:
    reply = client.post(
        path,
        json={"email": "Ada@Example.com", "password": PASSWORD, "username": "ada", "name": "Ada"},
    )
    assert reply.status == 201
    assert set(reply.body) == USER_KEYS
    assert reply.body["email"] == "Ada@example.com"
    assert reply.body["username"] == "ada"
    assert reply.body["role"] == "user"
    assert reply.body["roles"] == ["user"]
    assert reply.body["status"] == "active"
    assert reply.body["email_verified"] is False
    assert reply.body["created_at"].endswith("Z")
    assert PASSWORD.encode() not in reply.raw
    assert b"argon2" not in reply.raw


def test_register_refuses_a_taken_email_with_409(client: Client) -> None:
    client.register("ada@example.com")
    reply = client.post("/auth/register", json={"email": "ADA@example.com", "password": PASSWORD})
    assert reply.status == 409
    assert reply.code == "conflict"
    assert reply.details == {"field": "email"}


def test_register_reports_every_invalid_field_at_once(client: Client) -> None:
    reply = client.post(
        "/auth/register", json={"email": "not-an-email", "password": "short", "username": "a"}
    )
    assert reply.status == 400
    assert reply.code == "validation_failed"
    assert set(reply.details) == {"email", "password", "username"}
    assert all(
        isinstance(message, str) for messages in reply.details.values() for message in messages
    )


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"password": PASSWORD}, {"email": ["is required"]}),
        ({"email": 5, "password": PASSWORD}, {"email": ["must be a string"]}),
        ({"email": None, "password": PASSWORD}, {"email": ["must be a string"]}),
        (
            {"email": "ada@example.com", "password": PASSWORD, "admin": True},
            {"admin": ["is not a known field"]},
        ),
        (
            {"email": ["ada@example.com"], "password": 123456789012, "role": "admin"},
            {
                "email": ["must be a string"],
                "password": ["must be a string"],
                "role": ["is not a known field"],
            },
        ),
        ([1, 2, 3], {"body": ["must be a JSON object"]}),
        ("ada@example.com", {"body": ["must be a JSON object"]}),
        (None, {"body": ["is required"]}),
    ],
)
def test_register_answers_malformed_bodies_with_400_per_field(
    client: Client, body: object, problems: dict[str, list[str]]
) -> None:
    reply = client.post("/auth/register", json=body)
    assert reply.status == 400
    assert reply.code == "validation_failed"
    assert reply.details == problems


@pytest.mark.parametrize(
    ("content", "content_type", "problems"),
    [
        (b'{"email": "ada@example.com",', "application/json", {"body": ["is not valid JSON"]}),
        (b"\xff\xfe\x00garbage", "application/json", {"body": ["is not valid JSON"]}),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", {"body": ["is not valid JSON"]}),
        (
            b'{"email": NaN, "password": Infinity, "name": 1e999}',
            "application/json",
            {
                "email": ["must be a string"],
                "password": ["must be a string"],
                "name": ["must be a string"],
            },
        ),
        (b"email=ada%40example.com", "application/x-www-form-urlencoded", None),
        (b'{"email": "ada@example.com"}', "text/plain", None),
    ],
)
def test_register_answers_unparsable_bodies_with_400(
    client: Client, content: bytes, content_type: str, problems: dict[str, list[str]] | None
) -> None:
    reply = client.post("/auth/register", content=content, content_type=content_type)
    assert reply.status == 400
    assert reply.code == "validation_failed"
    if problems is not None:
        assert reply.details == problems
    else:
        assert set(reply.details) == {"body"}


def test_an_oversized_body_is_refused_with_413(client: Client) -> None:
    reply = client.post(
        "/auth/register", content=b" " * (1024 * 1024 + 1), content_type="application/json"
    )
    assert reply.status == 413
    assert reply.code == "payload_too_large"


def test_lone_surrogates_are_refused_not_crashed_on(client: Client) -> None:
    reply = client.post(
        "/auth/register",
        content=b'{"email": "ada@example.com", "password": "x", "name": "\\ud800"}',
        content_type="application/json",
    )
    assert reply.status == 400
    assert reply.details["name"] == ["must be valid Unicode text"]


# -- login ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/auth/login", "email", "ada@example.com"),
        ("/auth/login", "username", "ada"),
        ("/auth/login", "identifier", "ADA@example.com"),
        ("/auth/login", "username", "ada@example.com"),
        ("/login", "email", "ada@example.com"),
        ("/login", "username", "ada"),
    ],
)
def test_login_answers_a_token_pair(client: Client, path: str, field: str, value: str) -> None:
    client.register("ada@example.com", username="ada")
    reply = client.post(path, json={field: value, "password": PASSWORD})
    assert reply.status == 200
    assert set(reply.body) == PAIR_KEYS
    assert reply.body["token_type"] == "bearer"
    assert reply.body["expires_in"] == 900
    me = client.get("/auth/me", token=reply.body["access_token"])
    assert me.body["email"] == "ada@example.com"


def test_login_accepts_the_oauth2_password_form(client: Client) -> None:
    client.register("ada@example.com", username="ada")
    reply = client.post(
        "/auth/login", form={"grant_type": "password", "username": "ada", "password": PASSWORD}
    )
    assert reply.status == 200
    assert set(reply.body) == PAIR_KEYS


def test_login_refuses_a_form_of_another_grant_or_without_password(client: Client) -> None:
    reply = client.post("/auth/login", form={"grant_type": "client_credentials", "username": "x"})
    assert reply.status == 400
    assert set(reply.details) == {"grant_type", "password"}


def test_wrong_password_and_unknown_account_get_the_same_401(client: Client) -> None:
    client.register("ada@example.com")
    wrong = client.post("/auth/login", json={"email": "ada@example.com", "password": "nope" * 4})
    unknown = client.post("/auth/login", json={"email": "who@example.com", "password": "nope" * 4})
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body
    assert wrong.code == "invalid_credentials"
    assert wrong.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "identifier"),
        ({"email": "a@example.com", "username": "a", "password": PASSWORD}, "identifier"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "remember": True}, "remember"),
    ],
)
def test_login_refuses_incomplete_or_ambiguous_bodies(
    client: Client, body: dict[str, object], field: str
) -> None:
    reply = client.post("/auth/login", json=body)
    assert reply.status == 400
    assert field in reply.details


def test_a_locked_account_answers_429_with_retry_after(client: Client) -> None:
    client.register("ada@example.com")
    for _ in range(5):
        client.post("/auth/login", json={"email": "ada@example.com", "password": "wrong" * 3})
    reply = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert reply.status == 429
    assert reply.code == "account_locked"
    assert int(reply.headers["retry-after"]) == reply.details["retry_after"] > 0
    assert "www-authenticate" not in reply.headers


# -- refresh and logout ----------------------------------------------------------------


def test_refresh_rotates_and_a_replayed_token_is_refused(client: Client) -> None:
    client.register("ada@example.com")
    pair = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).body
    fresh = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert fresh.status == 200
    assert set(fresh.body) == PAIR_KEYS
    assert fresh.body["refresh_token"] != pair["refresh_token"]
    replay = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status == 401
    assert replay.code == "invalid_token"
    assert replay.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert client.post("/auth/refresh", json={}).details == {"refresh_token": ["is required"]}


def test_logout_answers_200_and_ends_the_session(client: Client) -> None:
    client.register("ada@example.com")
    pair = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).body
    reply = client.post(
        "/auth/logout",
        json={"refresh_token": pair["refresh_token"]},
        token=pair["access_token"],
    )
    # 200 with a message, as document 002 says ("200 OK: Logout successful").
    assert (reply.status, reply.body) == (200, {"message": "Logged out."})
    assert client.get("/auth/me", token=pair["access_token"]).status == 401
    assert client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status == 401


def test_logout_takes_no_body_too(client: Client, ada: Account) -> None:
    assert client.post("/auth/logout", token=ada.token).status == 200
    assert client.get("/users/me", token=ada.token).code == "invalid_token"


def test_logout_needs_a_bearer_token(client: Client) -> None:
    reply = client.post("/auth/logout")
    assert reply.status == 401
    assert reply.code == "authentication_failed"


# -- me ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/me", "/users/me"])
def test_me_answers_the_current_user(client: Client, ada: Account, path: str) -> None:
    reply = client.get(path, token=ada.token)
    assert reply.status == 200
    assert set(reply.body) == USER_KEYS
    assert reply.body["id"] == ada.id
    assert reply.body["last_login_at"] is not None


def test_me_through_an_api_key_obeys_the_key_scopes(client: Client, ada: Account) -> None:
    """The account loaded to authenticate the key is not read past its scopes."""
    scoped = client.post(
        f"/users/{ada.id}/api-keys",
        json={"name": "keys only", "scopes": ["apikeys:read:own"]},
        token=ada.token,
    )
    reader = client.post(
        f"/users/{ada.id}/api-keys",
        json={"name": "reader", "scopes": ["users:read:own"]},
        token=ada.token,
    )
    assert (scoped.status, reader.status) == (201, 201)
    denied = client.get("/auth/me", headers={"X-API-Key": scoped.body["key"]})
    assert (denied.status, denied.code) == (403, "permission_denied")
    allowed = client.get("/auth/me", headers={"X-API-Key": reader.body["key"]})
    assert (allowed.status, allowed.body["id"]) == (200, ada.id)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "authentication_failed"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid_token"),
        ({"Authorization": "Bearer uc_nope_nope"}, "invalid_token"),
        ({"X-API-Key": "uc_short"}, "invalid_token"),
        ({"Authorization": "Basic YWRhOnB3"}, "authentication_failed"),
        ({"Authorization": "Bearer"}, "authentication_failed"),
    ],
)
def test_me_without_valid_credentials_answers_401(
    client: Client, headers: dict[str, str], code: str
) -> None:
    reply = client.get("/auth/me", headers=headers)
    assert reply.status == 401
    assert reply.code == code
    assert reply.headers["www-authenticate"].startswith("Bearer")


# -- password reset ----------------------------------------------------------------------


def test_password_reset_answers_alike_for_known_and_unknown_emails(
    client: Client, outbox: Outbox
) -> None:
    client.register("ada@example.com")
    known = client.post("/auth/password-reset", json={"email": "ada@example.com"})
    unknown = client.post("/auth/password-reset", json={"email": "nobody@example.com"})
    assert known.status == unknown.status == 202
    assert known.raw == unknown.raw
    assert [email for email, _ in outbox.resets] == ["ada@example.com"]
    token = outbox.resets[0][1]
    assert token.encode() not in known.raw


def test_password_reset_confirm_sets_the_new_password(client: Client, outbox: Outbox) -> None:
    client.register("ada@example.com")
    client.post("/auth/password-reset", json={"email": "ada@example.com"})
    token = outbox.resets[-1][1]
    weak = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status == 400
    assert set(weak.details) == {"new_password"}
    new_password = "a brand new long passphrase"
    done = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
    )
    assert done.status == 204
    assert (
        client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).status
        == 401
    )
    assert client.login("ada@example.com", new_password)
    again = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
    )
    assert again.status == 401
    assert again.code == "invalid_token"


# -- email verification --------------------------------------------------------------------


def test_email_verification_round_trip(client: Client, ada: Account, outbox: Outbox) -> None:
    requested = client.post("/auth/verify-email", token=ada.token)
    assert requested.status == 202
    user, token = outbox.verifications[-1]
    assert user.id == ada.id
    assert token.encode() not in requested.raw
    confirmed = client.post("/auth/verify-email/confirm", json={"token": token})
    assert confirmed.status == 200
    assert confirmed.body["email_verified"] is True
    assert client.post("/auth/verify-email/confirm", json={"token": token}).status == 401


def test_email_verification_needs_authentication(client: Client) -> None:
    assert client.post("/auth/verify-email").status == 401
    assert client.post("/auth/verify-email/confirm", json={"token": "x" * 43}).status == 401


def test_the_admin_fixture_is_an_administrator(client: Client, admin: str) -> None:
    assert client.get("/auth/me", token=admin).body["email"] == ADMIN_EMAIL
