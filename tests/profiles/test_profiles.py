"""Profiles as data: each profile's OpenAPI document describes exactly what it
serves, profiles whose paths clash are refused together, and the pagination
headers of array lists (RFC 8288 ``Link``, ``X-Total-Count``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from usercore import SYSTEM, Page, User, UserCore
from usercore.web._profiles import PROFILES, clashes, profiles_of
from usercore.web._profiles import _page_headers as page_headers

from ..web.clients import make_core

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from usercore.web import fastapi as fastapi_adapter
from usercore.web import flask as flask_adapter

PASSWORD = "staple battery horse correct"


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        core.users.create(SYSTEM, email="admin@example.com", password=PASSWORD, roles=["admin"])
        yield core


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_the_openapi_document_describes_exactly_the_profiles_routes(
    core: UserCore, name: str
) -> None:
    profile = PROFILES[name]
    spec = TestClient(fastapi_adapter.create_app(core, profile=name)).get("/openapi.json").json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert documented == set(profile.paths)
    users = spec["paths"].get(f"{profile.base}/users", {}).get("get")
    if users is not None:
        schema = users["responses"]["200"]["content"]["application/json"]["schema"]
        assert (schema.get("type") == "array") == (profile.list_shape == "array")
    delete = spec["paths"][f"{profile.base}/users/{{user_id}}"]["delete"]
    assert ("204" in delete["responses"]) == (profile.deleted is None)
    assert ("200" in delete["responses"]) == (profile.deleted is not None)


@pytest.mark.parametrize(
    ("names", "clash"),
    [
        (["classic", "ums"], "GET /users"),
        (["v1", "rails"], "POST /api/v1/auth/register"),
        (["v1", "v1"], "POST /api/v1/auth/register"),
    ],
)
def test_profiles_whose_paths_clash_are_refused(names: list[str], clash: str) -> None:
    with pytest.raises(ValueError, match="cannot be served together") as raised:
        profiles_of(names)
    assert clash in str(raised.value)


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown API profile 'soap'"):
        profiles_of("soap")


def body(reply: Any) -> Any:
    """The JSON of a FastAPI (``json()``) or Flask (``json``) test reply."""
    return reply.json() if callable(reply.json) else reply.json


def test_profiles_without_clashes_serve_together_each_in_its_shapes(core: UserCore) -> None:
    assert clashes(profiles_of(["v1", "classic", "rbac"])) == []
    for app in (
        TestClient(fastapi_adapter.create_app(core, profile=["v1", "classic", "rbac"])),
        flask_adapter.create_app(core, profile=["v1", "classic", "rbac"]).test_client(),
    ):
        token = app.post("/login", json={"username": "admin", "password": "x"})
        assert token.status_code == 401
        login = app.post(
            "/api/auth/login", json={"username": "admin@example.com", "password": PASSWORD}
        )
        bearer = {"Authorization": f"Bearer {body(login)['token']}"}
        assert body(app.get("/api/users/999", headers=bearer)) == {"message": "User not found"}
        assert body(app.get("/api/v1/users/999", headers=bearer))["error"]["code"] == "not_found"
        assert isinstance(body(app.get("/users", headers=bearer)), list)
        assert isinstance(body(app.get("/api/v1/users", headers=bearer)), dict)


def test_a_prefix_moves_a_profile(core: UserCore) -> None:
    app = TestClient(fastapi_adapter.create_app(core, profile="rbac", prefix="/v3"))
    reply = app.post("/v3/auth/login", json={"username": "admin@example.com", "password": PASSWORD})
    assert reply.status_code == 200
    assert app.post("/api/auth/login", json={}).status_code == 404


def _page(page: int, per_page: int, total: int) -> Page[User]:
    return Page(items=[], page=page, per_page=per_page, total=total, next_cursor=None)


def test_link_and_total_headers_of_a_page() -> None:
    headers = page_headers(_page(2, 10, 35), "/users")
    assert headers["X-Total-Count"] == "35"
    assert headers["Link"] == (
        '</users?page=1&per_page=10>; rel="first", '
        '</users?page=1&per_page=10>; rel="prev", '
        '</users?page=3&per_page=10>; rel="next", '
        '</users?page=4&per_page=10>; rel="last"'
    )
    only = page_headers(_page(1, 10, 0), "/users")
    assert only == {
        "X-Total-Count": "0",
        "Link": '</users?page=1&per_page=10>; rel="first", </users?page=1&per_page=10>; rel="last"',
    }


def test_an_array_list_follows_its_link_headers_to_every_user(core: UserCore) -> None:
    for number in range(7):
        core.users.create(SYSTEM, username=f"walker{number}", password=PASSWORD)
    app = flask_adapter.create_app(core, profile="ums").test_client()
    token = app.post(
        "/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
    ).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    url: str | None = "/users?per_page=3"
    seen: list[int] = []
    while url is not None:
        reply = app.get(url, headers=bearer)
        seen += [user["id"] for user in reply.get_json()]
        links = {
            part.split(";")[1].strip(): part.split(";")[0].strip(" <>")
            for part in reply.headers["Link"].split(",")
        }
        url = links.get('rel="next"')
    assert len(seen) == len(set(seen)) == 8


def test_an_application_composes_its_own_profile(core: UserCore) -> None:
    # Registration answering tokens is an opt-in any profile may take.
    profile = flask_adapter.Profile(
        name="mine",
        document="ours",
        base="/mine",
        routes=(("POST", "/signup", "register"), ("GET", "/people", "list_users")),
        register_tokens=True,
        list_shape="array",
    )
    app = flask_adapter.create_app(core, profile=profile).test_client()
    reply = app.post("/mine/signup", json={"username": "grace", "password": PASSWORD})
    assert reply.status_code == 201
    answer = reply.get_json()
    assert (answer["user"]["username"], answer["user"]["email"]) == ("grace", None)
    bearer = {"Authorization": f"Bearer {answer['access_token']}"}
    assert app.get("/mine/people", headers=bearer).status_code == 403  # a user lists no one
    assert app.get("/api/v1/users").status_code == 404
