"""``GET /auth/me`` on PostgreSQL: the token check's read awaited on the event loop.

The store reads over the network, so it is not an in-process store; but its
token check can be awaited (``PostgresStore.read_for_token``): the endpoint
then needs no worker thread, still reads the revocations on every request,
answers a store fault with 503 + ``Retry-After``, and runs the permission
check in a thread whenever that check would read the store first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import argon2
import httpx
import pytest

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from tests.storage.postgres_support import skip_reason
from tests.storage.test_postgres import Schemas
from tests.storage.test_postgres import schemas as schemas  # the fixture
from usercore import SYSTEM, Settings, UserCore
from usercore.errors import StoreUnavailable
from usercore.web._core import awaited_reads, inline_reads
from usercore.web.fastapi import create_app

from .test_scheduling import EMAIL, ME, PASSWORD, run
from .test_scheduling import no_thread_pool as no_thread_pool  # the fixture

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@pytest.fixture
def core(schemas: Schemas) -> Iterator[UserCore]:
    settings = Settings(
        secret_key="test-" + "k" * 40,
        argon2_profile=argon2.profiles.CHEAPEST,
        policy_refresh_interval=timedelta(hours=1),  # no probe during a test
    )
    with UserCore(schemas.open(), settings) as core:
        core.users.create(SYSTEM, email=EMAIL, password=PASSWORD)
        yield core


def me(app: Any, headers: dict[str, str]) -> list[httpx.Response]:
    answers: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient) -> None:
        answers.append(await client.get(ME, headers=headers))

    run(scenario, app)
    return answers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_postgres_awaits_its_token_checks_and_reads_over_the_network(core: UserCore) -> None:
    assert not inline_reads(core)
    assert awaited_reads(core) is core.store


def test_me_on_postgres_needs_no_thread_and_sees_a_revocation_at_once(
    core: UserCore, no_thread_pool: list[str]
) -> None:
    token = core.auth.login(EMAIL, PASSWORD).access_token
    core.auth.authenticate(token)  # the role table loaded
    app = create_app(core)
    [answer] = me(app, bearer(token))
    assert (answer.status_code, answer.json()["email"]) == (200, EMAIL)
    core.auth.logout(token)
    [answer] = me(app, bearer(token))
    assert answer.status_code == 401
    assert no_thread_pool == []


def test_me_runs_in_a_thread_when_its_permission_check_would_read_the_store(
    core: UserCore, no_thread_pool: list[str]
) -> None:
    token = core.auth.login(EMAIL, PASSWORD).access_token
    core.policy.invalidate()  # a role changed: the next check reloads the roles
    assert core.policy.refresh_due()
    [answer] = me(create_app(core), bearer(token))
    assert answer.status_code == 200
    assert no_thread_pool == ["run"]
    assert not core.policy.refresh_due()


def test_a_store_fault_in_the_awaited_token_check_is_503_with_retry_after(
    core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = core.auth.login(EMAIL, PASSWORD).access_token

    async def down(user_id: int, jti: str) -> Any:
        raise StoreUnavailable(retry_after=7)

    monkeypatch.setattr(core.store, "read_for_token", down)
    [answer] = me(create_app(core), bearer(token))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["error"]["code"] == "store_unavailable"


def test_an_api_key_is_still_checked_in_a_thread_of_the_read_pool(
    core: UserCore, no_thread_pool: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user = core.users.get_by_email(SYSTEM, EMAIL)
    _, key = core.api_keys.create(SYSTEM, user.id, name="cli", scopes=["users:read"])
    threads: list[str] = []
    authenticate = core.auth.authenticate_api_key

    def recording(raw: str, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return authenticate(raw, **kwargs)

    monkeypatch.setattr(core.auth, "authenticate_api_key", recording)
    [answer] = me(create_app(core), {"X-API-Key": key})
    assert answer.status_code == 200
    assert len(threads) == 1
    assert threads[0].startswith("usercore-read")  # not the loop, not FastAPI's pool
    assert no_thread_pool == []
