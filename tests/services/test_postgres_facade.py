"""Several servers on one PostgreSQL database: each test opens more than one
``UserCore`` on one fresh schema, as separate servers would, and checks what
they must agree on (uniqueness, roles, revocations, lockout, token rotation).

Skipped, with the reason, when no PostgreSQL server answers (see
``tests/storage/postgres_support.py``).
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.conftest import ADMIN_PASSWORD, PASSWORD, make_settings
from tests.storage.postgres_support import postgres_schema
from usercore import (
    SYSTEM,
    AccountLocked,
    ConflictError,
    InvalidCredentials,
    TokenError,
    UserCore,
    UserStatus,
    cli,
)
from usercore.storage._postgres_schema import LATEST_VERSION

THREADS = 6
REGISTRATIONS = 40
EMAILS = 60  # thread t registers numbers (7t + i) % 60: every email by four threads


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_schema() as schema_url:
        yield schema_url


@pytest.fixture
def servers(url: str) -> Iterator[Callable[..., UserCore]]:
    """Open a ``UserCore`` on the shared schema, as one more server would."""
    opened: list[UserCore] = []

    def open_server(**overrides: Any) -> UserCore:
        core = UserCore.open(url, settings=make_settings(**overrides))
        opened.append(core)
        return core

    yield open_server
    for core in opened:
        core.close()


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(n)`` in ``count`` threads released at once; results or exceptions."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(number: int) -> None:
        start.wait()
        try:
            results[number] = work(number)
        except BaseException as exc:  # collected for the assertions
            results[number] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a thread is stuck"
    return results


def test_six_servers_registering_overlapping_emails_create_each_once(
    servers: Callable[..., UserCore],
) -> None:
    """Each thread is a server with its own UserCore (opened at the same moment
    on an empty schema: one migration, one seeding of the built-in roles), and
    registers 40 addresses that other servers register too."""

    def server(number: int) -> tuple[list[int], list[Any]]:
        core = servers()
        created, refused = [], []
        for offset in range(REGISTRATIONS):
            n = (7 * number + offset) % EMAILS
            try:
                core.users.register(
                    email=f"Person{n}@Example.com", username=f"person{n}", password=PASSWORD
                )
                created.append(n)
            except ConflictError as exc:
                refused.append(exc.field)
        return created, refused

    results = together(THREADS, server)
    unexpected = [result for result in results if isinstance(result, BaseException)]
    assert unexpected == []
    created = sorted(n for made, _ in results for n in made)
    refused = [field for _, fields in results for field in fields]
    assert list(range(EMAILS)) == created, "every address exactly once"
    assert ["email"] * (THREADS * REGISTRATIONS - EMAILS) == refused
    core = servers()
    page = core.users.list(SYSTEM, page=1, per_page=100)
    assert EMAILS == page.total == len(page.items)
    assert {f"person{n}@example.com" for n in range(EMAILS)} == {
        user.email.lower() for user in page.items
    }
    assert {frozenset({"user"})} == {user.roles for user in page.items}
    assert ["admin", "user"] == sorted(role.name for role in core.roles.list(SYSTEM))


def test_servers_see_each_others_role_changes_and_revocations(
    servers: Callable[..., UserCore],
) -> None:
    interval = timedelta(milliseconds=50)
    first = servers(policy_refresh_interval=interval)
    second = servers(policy_refresh_interval=interval)
    for core in (first, second):
        core.permissions.register("reports:read")
    ada = first.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    pair = first.auth.login("ada", PASSWORD)

    # JWTs verify on any server: the key is shared, the check needs no session.
    assert ada.id == second.auth.authenticate(pair.access_token).user_id

    # A role change on one server reaches the other within the refresh interval.
    first.roles.create(SYSTEM, "viewer", permissions=["reports:read"])
    first.users.assign_roles(SYSTEM, ada.id, ["user", "viewer"])
    principal = second.auth.authenticate(pair.access_token)  # roles come from the store
    assert "viewer" in principal.roles
    time.sleep(2 * interval.total_seconds())  # the interval runs on the monotonic clock
    assert second.policy.is_allowed(principal, "reports:read")
    first.roles.set_permissions(SYSTEM, "viewer", [])
    time.sleep(2 * interval.total_seconds())
    assert not second.policy.is_allowed(principal, "reports:read")

    # Revocations are shared state: the next check on any server refuses.
    first.auth.logout(pair.access_token, pair.refresh_token)
    with pytest.raises(TokenError):
        second.auth.authenticate(pair.access_token)
    with pytest.raises(TokenError):
        second.auth.refresh(pair.refresh_token)

    again = second.auth.login("ada", PASSWORD)
    second.auth.logout_all(SYSTEM, ada.id)
    with pytest.raises(TokenError):
        first.auth.authenticate(again.access_token)

    third = first.auth.login("ada", PASSWORD)
    second.users.set_status(SYSTEM, ada.id, UserStatus.INACTIVE)
    with pytest.raises(TokenError):
        first.auth.authenticate(third.access_token)


def test_failed_logins_on_every_server_all_count_toward_the_lock(
    servers: Callable[..., UserCore],
) -> None:
    """Read-modify-write of the failure counters under row locks: no failure is
    lost, for an account or for an unknown identifier (no row yet)."""
    threshold = 24
    cores = [servers(lockout_threshold=threshold) for _ in range(2)]
    cores[0].users.register(email="ada@example.com", password=PASSWORD, username="ada")

    def attack(number: int) -> list[str]:
        core = cores[number % 2]
        outcomes = []
        for _ in range(threshold // 4):
            for identifier in ("ada", "ghost@example.com"):
                try:
                    core.auth.login(identifier, "wrong password, wrong password")
                except InvalidCredentials:
                    outcomes.append("refused")
        return outcomes

    results = together(4, attack)
    assert [["refused"] * (threshold // 2)] * 4 == results
    for core in cores:  # the threshold is reached exactly: both are locked now
        for identifier in ("ada", "ghost@example.com"):
            with pytest.raises(AccountLocked):
                core.auth.login(identifier, PASSWORD)


def test_one_refresh_token_spent_on_two_servers_at_once_rotates_once(
    servers: Callable[..., UserCore],
) -> None:
    cores = [servers(), servers()]
    cores[0].users.register(email="ada@example.com", password=PASSWORD, username="ada")
    pair = cores[0].auth.login("ada", PASSWORD)

    results = together(2, lambda n: cores[n].auth.refresh(pair.refresh_token))
    refused = [result for result in results if isinstance(result, TokenError)]
    assert len(refused) == 1, results


# -- the command line ---------------------------------------------------------------


def test_the_command_line_migrates_and_administers_a_postgres_schema(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert 0 == cli.main(["migrate", "--db", url])
    assert f"schema version {LATEST_VERSION}" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(ADMIN_PASSWORD + "\n"))
    created = ["create-admin", "--db", url, "--email", "root@example.com", "--password-stdin"]
    assert 0 == cli.main(created)
    assert 0 == cli.main(["users", "list", "--db", url])
    assert "root@example.com" in capsys.readouterr().out


def test_an_unreachable_server_is_one_line_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    assert 1 == cli.main(["migrate", "--db", "postgresql://app:s3cret@127.0.0.1:1/users"])
    error = capsys.readouterr().err
    assert error.startswith("usercore: error: cannot connect to PostgreSQL at 127.0.0.1:1/users")
    assert "s3cret" not in error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def two_servers(url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``usercore serve`` twice on one schema, as two machines would run it."""
    env = {**os.environ, "USERCORE_SECRET_KEY": secrets.token_urlsafe(48)}
    processes, bases, logs = [], [], []
    try:
        for number in range(2):
            port = free_port()
            command = [sys.executable, "-m", "usercore.cli", "serve", "--db", url]
            command += ["--port", str(port), "--log-level", "warning"]
            logs.append((tmp_path / f"server{number}.log").open("wb"))
            processes.append(
                subprocess.Popen(command, stdout=logs[-1], stderr=subprocess.STDOUT, env=env)
            )
            bases.append(f"http://127.0.0.1:{port}/api/v1")
        deadline = time.monotonic() + 30
        for process, base in zip(processes, bases, strict=True):
            while True:
                assert process.poll() is None, "a server exited"
                assert time.monotonic() < deadline, "a server did not start in time"
                try:
                    httpx.get(base.removesuffix("/api/v1") + "/openapi.json", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        yield bases[0], bases[1]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in logs:
            log.close()


@pytest.mark.slow
def test_two_usercore_serve_processes_share_one_database(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    account = {"email": "ada@example.com", "password": PASSWORD, "username": "ada"}
    assert 201 == httpx.post(f"{first}/auth/register", json=account).status_code
    again = httpx.post(f"{second}/auth/register", json={**account, "email": "ADA@example.com"})
    assert (409, "conflict") == (again.status_code, again.json()["error"]["code"])
    tokens = httpx.post(
        f"{second}/auth/login", json={"identifier": "ada", "password": PASSWORD}
    ).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert "ada@example.com" == httpx.get(f"{first}/auth/me", headers=bearer).json()["email"]
    logout = httpx.post(
        f"{first}/auth/logout", headers=bearer, json={"refresh_token": tokens["refresh_token"]}
    )
    assert 204 == logout.status_code
    assert 401 == httpx.get(f"{second}/auth/me", headers=bearer).status_code
