"""DESIGN §8, the /users routes, on both adapters: listing and pagination,
administration, self-service, roles and passwords."""

from __future__ import annotations

import pytest

from usercore import SYSTEM

from .clients import PASSWORD, Account, Client


def make_users(client: Client, count: int, **fields: object) -> list[int]:
    return [client.register(f"user{i:02d}@example.com", **fields)["id"] for i in range(count)]


# -- listing ----------------------------------------------------------------------------


def test_users_are_listed_by_page_with_a_total(client: Client, admin: str) -> None:
    make_users(client, 5)
    first = client.get("/users", token=admin)
    assert first.status == 200
    assert set(first.body) == {"items", "page", "per_page", "total", "next_cursor"}
    paged = client.get("/users?page=2&per_page=2", token=admin)
    assert paged.status == 200
    assert paged.body["page"] == 2
    assert paged.body["per_page"] == 2
    assert paged.body["total"] == 6
    assert [user["email"] for user in paged.body["items"]] == [
        "user01@example.com",
        "user02@example.com",
    ]
    last = client.get("/users?page=4&per_page=2", token=admin)
    assert last.body["items"] == []


def test_a_cursor_walks_every_user_once(client: Client, admin: str) -> None:
    ids = make_users(client, 7)
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        path = "/users?per_page=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(path, token=admin).body
        assert page["page"] is None
        assert page["total"] is None
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, *ids]


def test_users_are_filtered_by_role_status_and_search(client: Client, admin: str) -> None:
    make_users(client, 3)
    client.register("grace@example.com", name="Grace Hopper")
    by_role = client.get("/users?role=admin", token=admin).body["items"]
    assert [user["role"] for user in by_role] == ["admin"]
    found = client.get("/users?q=hopper", token=admin).body["items"]
    assert [user["email"] for user in found] == ["grace@example.com"]
    grace = found[0]["id"]
    client.patch(f"/users/{grace}", json={"status": "inactive"}, token=admin)
    inactive = client.get("/users?status=inactive", token=admin).body["items"]
    assert [user["id"] for user in inactive] == [grace]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("per_page=0", {"per_page"}),
        ("per_page=101", {"per_page"}),
        ("per_page=ten", {"per_page"}),
        ("per_page=2.5", {"per_page"}),
        ("page=0", {"page"}),
        ("page=-1", {"page"}),
        ("page=99999999999999999999", {"page"}),
        ("page=1&cursor=dTox", {"cursor"}),
        ("cursor=not-a-cursor", {"cursor"}),
        ("status=deleted", {"status"}),
        ("q=" + "x" * 201, {"q"}),
        ("per_page=0&page=0&status=x", {"per_page", "page", "status"}),
        # A misspelt filter must not answer the unfiltered list.
        ("search=hopper", {"search"}),
        ("q=hopper&sort=email", {"sort"}),
    ],
)
def test_bad_listing_parameters_answer_400_per_field(
    client: Client, admin: str, query: str, fields: set[str]
) -> None:
    reply = client.get(f"/users?{query}", token=admin)
    assert reply.status == 400
    assert reply.code == "validation_failed"
    assert set(reply.details) == fields


def test_only_administrators_list_users(client: Client, ada: Account) -> None:
    reply = client.get("/users", token=ada.token)
    assert reply.status == 403
    assert reply.code == "permission_denied"
    assert client.get("/users").status == 401


# -- creation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "roles"),
    [
        ({}, ["user"]),
        ({"roles": ["admin", "user"]}, ["admin", "user"]),
        ({"role": "admin"}, ["admin"]),
    ],
)
def test_an_administrator_creates_users_with_roles(
    client: Client, admin: str, extra: dict[str, object], roles: list[str]
) -> None:
    reply = client.post(
        "/users", json={"email": "new@example.com", "password": PASSWORD, **extra}, token=admin
    )
    assert reply.status == 201
    assert reply.body["roles"] == roles
    assert reply.body["role"] == roles[0]


def test_a_user_created_without_password_cannot_log_in_yet(client: Client, admin: str) -> None:
    reply = client.post("/users", json={"email": "new@example.com"}, token=admin)
    assert reply.status == 201
    login = client.post("/auth/login", json={"email": "new@example.com", "password": PASSWORD})
    assert login.status == 401


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"email": "x@example.com", "role": "admin", "roles": ["admin"]}, 400, "role"),
        ({"email": "x@example.com", "roles": ["wizard"]}, 400, "roles"),
        ({"email": "x@example.com", "roles": "admin"}, 400, "roles"),
        ({"email": "x@example.com", "status": "banned"}, 400, "status"),
        ({"email": "root@example.com"}, 409, "field"),
        ({"email": "x@example.com", "id": 7}, 400, "id"),
    ],
)
def test_creating_users_refuses_bad_input(
    client: Client, admin: str, body: dict[str, object], status: int, field: str
) -> None:
    reply = client.post("/users", json=body, token=admin)
    assert reply.status == status
    assert field in reply.details


def test_only_administrators_create_users(client: Client, ada: Account) -> None:
    reply = client.post("/users", json={"email": "x@example.com"}, token=ada.token)
    assert reply.status == 403


# -- one user --------------------------------------------------------------------------------


def test_users_read_themselves_and_administrators_read_anyone(
    client: Client, admin: str, ada: Account, bob: Account
) -> None:
    assert client.get(f"/users/{ada.id}", token=ada.token).body["email"] == ada.email
    assert client.get(f"/users/{bob.id}", token=admin).body["email"] == bob.email
    other = client.get(f"/users/{bob.id}", token=ada.token)
    assert other.status == 403
    # A user cannot probe which ids exist.
    assert client.get("/users/9999", token=ada.token).status == 403
    assert client.get("/users/9999", token=admin).status == 404


@pytest.mark.parametrize("user_id", ["abc", "1.5", "1e3", "%20"])
def test_a_non_integer_id_answers_400(client: Client, admin: str, user_id: str) -> None:
    reply = client.get(f"/users/{user_id}", token=admin)
    assert reply.status == 400
    assert reply.details == {"user_id": ["must be an integer"]}


@pytest.mark.parametrize("user_id", ["0", "-1", "99999999999999999999999"])
def test_an_id_that_cannot_exist_answers_404(client: Client, admin: str, user_id: str) -> None:
    assert client.get(f"/users/{user_id}", token=admin).status == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_put_and_patch_both_change_only_what_is_sent(
    client: Client, admin: str, ada: Account, method: str
) -> None:
    reply = client.request(method, f"/users/{ada.id}", json={"name": "Ada L."}, token=ada.token)
    assert reply.status == 200
    assert reply.body["name"] == "Ada L."
    assert reply.body["username"] == "ada"
    assert reply.body["email"] == ada.email
    cleared = client.request(method, f"/users/{ada.id}", json={"username": None}, token=admin)
    assert cleared.body["username"] is None
    unchanged = client.request(method, f"/users/{ada.id}", json={}, token=ada.token)
    assert unchanged.status == 200
    assert unchanged.body["name"] == "Ada L."


@pytest.mark.parametrize(("field", "value"), [("role", "admin"), ("roles", ["user", "admin"])])
def test_administrators_change_roles_through_updates(
    client: Client, admin: str, ada: Account, field: str, value: object
) -> None:
    reply = client.put(f"/users/{ada.id}", json={field: value}, token=admin)
    assert reply.status == 200
    assert reply.body["role"] == "admin"
    assert client.get("/users", token=ada.token).status == 200


def test_users_cannot_raise_their_own_role_or_touch_others(
    client: Client, ada: Account, bob: Account
) -> None:
    assert client.patch(f"/users/{ada.id}", json={"role": "admin"}, token=ada.token).status == 403
    assert (
        client.patch(f"/users/{ada.id}", json={"status": "inactive"}, token=ada.token).status == 403
    )
    assert client.patch(f"/users/{bob.id}", json={"name": "x"}, token=ada.token).status == 403


@pytest.mark.parametrize(
    ("body", "status", "fields"),
    [
        ({"email": None}, 400, {"email"}),
        ({"email": "bob@example.com"}, 409, {"field"}),
        ({"password": "short"}, 400, {"password"}),
        ({"password": None}, 400, {"password"}),
        ({"name": "x" * 101, "username": "!"}, 400, {"name", "username"}),
        ({"role": "user", "roles": ["user"]}, 400, {"role"}),
    ],
)
def test_updates_refuse_bad_input(
    client: Client,
    admin: str,
    ada: Account,
    bob: Account,
    body: dict[str, object],
    status: int,
    fields: set[str],
) -> None:
    reply = client.patch(f"/users/{ada.id}", json=body, token=admin)
    assert reply.status == status
    assert set(reply.details) == fields


def test_an_administrator_sets_a_password_with_put(
    client: Client, admin: str, ada: Account
) -> None:
    reply = client.put(f"/users/{ada.id}", json={"password": "a new long passphrase"}, token=admin)
    assert reply.status == 200
    assert client.get("/users/me", token=ada.token).status == 401  # her sessions ended
    assert (
        client.post(
            "/auth/login", json={"email": ada.email, "password": "a new long passphrase"}
        ).status
        == 200
    )


def test_deleting_a_user_answers_204_then_404(client: Client, admin: str, ada: Account) -> None:
    reply = client.delete(f"/users/{ada.id}", token=admin)
    assert reply.status == 204
    assert reply.raw == b""
    assert client.get(f"/users/{ada.id}", token=admin).status == 404
    assert client.delete(f"/users/{ada.id}", token=admin).status == 404
    assert client.get("/auth/me", token=ada.token).status == 401


def test_users_delete_themselves_but_not_others(client: Client, ada: Account, bob: Account) -> None:
    assert client.delete(f"/users/{bob.id}", token=ada.token).status == 403
    assert client.delete(f"/users/{ada.id}", token=ada.token).status == 204


# -- roles and passwords of a user -------------------------------------------------------------


def test_roles_are_replaced_through_the_roles_route(
    client: Client, admin: str, ada: Account
) -> None:
    own = client.post(f"/users/{ada.id}/roles", json={"roles": ["admin"]}, token=ada.token)
    assert own.status == 403
    reply = client.post(f"/users/{ada.id}/roles", json={"roles": ["admin", "user"]}, token=admin)
    assert reply.status == 200
    assert reply.body["roles"] == ["admin", "user"]
    unknown = client.post(f"/users/{ada.id}/roles", json={"roles": ["wizard"]}, token=admin)
    assert unknown.status == 400
    assert set(unknown.details) == {"roles"}
    assert client.post(f"/users/{ada.id}/roles", json={}, token=admin).details == {
        "roles": ["is required"]
    }


def test_users_change_their_password_with_the_current_one(client: Client, ada: Account) -> None:
    new = "another long passphrase"
    wrong = client.put(
        f"/users/{ada.id}/password",
        json={"current_password": "not it at all", "new_password": new},
        token=ada.token,
    )
    assert wrong.status == 400
    assert set(wrong.details) == {"current_password"}
    without = client.put(f"/users/{ada.id}/password", json={"new_password": new}, token=ada.token)
    assert without.status == 403
    done = client.put(
        f"/users/{ada.id}/password",
        json={"current_password": PASSWORD, "new_password": new},
        token=ada.token,
    )
    assert done.status == 204
    assert client.get("/auth/me", token=ada.token).status == 401
    assert client.login(ada.email, new)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/users/{id}", {"email": "ada.new@example.com"}),
        ("PUT", "/users/{id}/password", {"new_password": "another long passphrase"}),
        ("POST", "/users/{id}/api-keys", {"name": "ci"}),
    ],
)
def test_wrong_current_passwords_lock_logins_from_that_client_like_failed_logins(
    client: Client, ada: Account, method: str, path: str, body: dict[str, str]
) -> None:
    """A fresh-authentication guess is a login guess from the same client: the
    same per-client counter and lockout (OWASP ASVS 4.0.3 V2.2.1)."""
    for _ in range(client.core.settings.lockout_threshold):
        wrong = client.request(
            method,
            path.format(id=ada.id),
            json={**body, "current_password": "not it at all"},
            token=ada.token,
        )
        assert wrong.status == 400
        assert set(wrong.details) == {"current_password"}
    login = client.post("/auth/login", json={"email": ada.email, "password": PASSWORD})
    assert login.status == 429
    assert login.code == "account_locked"
    again = client.request(
        method, path.format(id=ada.id), json={**body, "current_password": PASSWORD}, token=ada.token
    )
    assert again.status == 429


def test_administrators_set_passwords_without_the_current_one(
    client: Client, admin: str, ada: Account
) -> None:
    new = "set by the administrator"
    reply = client.put(f"/users/{ada.id}/password", json={"new_password": new}, token=admin)
    assert reply.status == 204
    assert client.login(ada.email, new)


# -- requests as the single-role APIs usercore replaces send them -----------------------------


def test_legacy_single_role_clients_work_end_to_end(client: Client) -> None:
    """``/register``, ``/login`` by username, ``role: "..."`` on create and update."""
    registered = client.post(
        "/register", json={"username": "grace", "email": "grace@example.com", "password": PASSWORD}
    )
    assert registered.status == 201
    assert registered.body["role"] == "user"
    client.core.users.assign_roles(SYSTEM, registered.body["id"], ["admin"])
    login = client.post("/login", json={"username": "grace", "password": PASSWORD})
    assert login.status == 200
    token = login.body["access_token"]
    created = client.post(
        "/users",
        json={"email": "alan@example.com", "password": PASSWORD, "name": "Alan", "role": "admin"},
        token=token,
    )
    assert created.status == 201
    assert created.body["role"] == "admin"
    alan = created.body["id"]
    updated = client.put(
        f"/users/{alan}", json={"name": "Alan Turing", "role": "user"}, token=token
    )
    assert updated.status == 200
    assert (updated.body["name"], updated.body["role"]) == ("Alan Turing", "user")
    listed = client.get("/users?page=1&per_page=10", token=token)
    assert listed.body["total"] == 3
    assert client.delete(f"/users/{alan}", token=token).status == 204
    assert client.get("/users/me", token=token).body["username"] == "grace"
