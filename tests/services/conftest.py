"""Facade fixtures: one ``UserCore`` per test, parametrized over every store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import argon2
import pytest

from tests.storage.postgres_support import postgres_schema
from usercore import SYSTEM, Principal, Settings, User, UserCore
from usercore.services.events import Event

SECRET = "facade-tests-secret-" + "s" * 32
PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "the admin's long passphrase"
START = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)


class FakeClock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_settings(**overrides: object) -> Settings:
    fields: dict[str, object] = {
        "secret_key": SECRET,
        "argon2_profile": argon2.profiles.CHEAPEST,
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


STORES = ["memory", "sqlite", "postgres"]


def store_url(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path / 'users.db'}"


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database_url(store_kind: str, tmp_path: Path) -> Iterator[str]:
    """This test's store: ``memory://``, a file in ``tmp_path``, or a fresh
    PostgreSQL schema, dropped afterwards (skipped when no server answers)."""
    if store_kind == "postgres":
        with postgres_schema() as url:
            yield url
    else:
        yield store_url(store_kind, tmp_path)


@pytest.fixture
def open_core(database_url: str, clock: FakeClock) -> Iterator[Callable[..., UserCore]]:
    """Open (more) facades on this test's store; all are closed afterwards."""
    opened: list[UserCore] = []

    def open_(**overrides: object) -> UserCore:
        core = UserCore.open(database_url, settings=make_settings(**overrides), clock=clock)
        opened.append(core)
        return core

    yield open_
    for core in opened:
        core.close()


@pytest.fixture
def core(open_core: Callable[..., UserCore]) -> UserCore:
    return open_core()


@pytest.fixture
def events(core: UserCore) -> list[Event]:
    captured: list[Event] = []
    core.events.subscribe(captured.append)
    return captured


@pytest.fixture
def ada(core: UserCore) -> User:
    return core.users.register(email="ada@example.com", password=PASSWORD, username="ada")


@pytest.fixture
def bob(core: UserCore) -> User:
    return core.users.register(email="bob@example.com", password=PASSWORD, username="bob")


@pytest.fixture
def admin_user(core: UserCore) -> User:
    return core.users.create(
        SYSTEM, email="root@example.com", password=ADMIN_PASSWORD, roles=["admin"]
    )


def login_principal(core: UserCore, identifier: str, password: str = PASSWORD) -> Principal:
    return core.auth.authenticate(core.auth.login(identifier, password).access_token)


@pytest.fixture
def admin(core: UserCore, admin_user: User) -> Principal:
    return login_principal(core, "root@example.com", ADMIN_PASSWORD)


@pytest.fixture
def ada_p(core: UserCore, ada: User) -> Principal:
    return login_principal(core, "ada")


@pytest.fixture
def bob_p(core: UserCore, bob: User) -> Principal:
    return login_principal(core, "bob")


@pytest.fixture
def usercore_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="usercore")
    return caplog


def admin_of(core: UserCore) -> Principal:
    """An administrator account created on ``core``, logged in."""
    core.users.create(SYSTEM, email="root@example.com", password=ADMIN_PASSWORD, roles=["admin"])
    return login_principal(core, "root@example.com", ADMIN_PASSWORD)


def watch(core: UserCore) -> list[Event]:
    """Every event ``core`` emits from now on."""
    seen: list[Event] = []
    core.events.subscribe(seen.append)
    return seen
