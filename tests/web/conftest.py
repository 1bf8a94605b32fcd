"""Fixtures of the HTTP conformance suite.

``client`` is parametrized over FastAPI (its ``TestClient``) and Flask (its
test client): every test that takes it runs against both adapters, each time
on a fresh in-memory core with an administrator, and an outbox that catches
the tokens the password-reset and verification hooks deliver.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from usercore import SYSTEM, UserCore

from .clients import ADAPTERS, ADMIN_EMAIL, ADMIN_PASSWORD, Account, Client, Outbox, make_core

with warnings.catch_warnings():
    # Starlette asks for httpx2, which is not a dependency; its TestClient works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import fastapi.testclient  # noqa: F401


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        core.users.create(SYSTEM, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, roles=["admin"])
        yield core


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture(params=ADAPTERS)
def client(request: pytest.FixtureRequest, core: UserCore, outbox: Outbox) -> Client:
    return Client(request.param, core, outbox)


@pytest.fixture
def admin(client: Client) -> str:
    """An administrator's access token."""
    return client.login(ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def ada(client: Client) -> Account:
    """A self-registered user (role ``user``) and her access token."""
    user = client.register("ada@example.com", username="ada", name="Ada")
    return Account(user["id"], user["email"], client.login("ada@example.com"))


@pytest.fixture
def bob(client: Client) -> Account:
    user = client.register("bob@example.com", username="bob")
    return Account(user["id"], user["email"], client.login("bob@example.com"))
