"""The worker pool: every sync method has its twin, calls are bounded, cancellation is safe."""

from __future__ import annotations

import importlib
import inspect
import pickle
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from tests.services.conftest import PASSWORD, make_settings
from usercore import SYSTEM, InvalidCredentials, UserCore
from usercore.aio import DEFAULT_MAX_WORKERS, AsyncUserCore
from usercore.ports import LoginAttempts
from usercore.services.events import Event

pytestmark = pytest.mark.anyio

BOUND = 60.0  # seconds; only so that a regression fails instead of hanging

SERVICES = ["users", "roles", "permissions", "auth", "api_keys"]


def public_names(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_sync_method_has_an_async_twin_with_its_signature(
    acore: AsyncUserCore, service: str
) -> None:
    """A method added to a sync service without its twin here fails this test."""
    sync_service = getattr(acore.sync, service)
    async_service = getattr(acore, service)
    assert public_names(async_service) == public_names(sync_service) | {"sync"}
    for name in public_names(sync_service):
        twin = getattr(async_service, name)
        original = getattr(sync_service, name)
        assert inspect.signature(twin) == inspect.signature(original), name
        assert twin.__doc__ == original.__doc__, name
        if inspect.isgeneratorfunction(original):
            assert inspect.isasyncgenfunction(twin), name
        else:
            assert inspect.iscoroutinefunction(twin), name


async def test_policy_and_events_are_the_sync_objects(acore: AsyncUserCore) -> None:
    """Inline by design (docs/async.md): one policy cache and one event bus per facade."""
    assert acore.policy is acore.sync.policy
    assert acore.events is acore.sync.events
    assert acore.settings is acore.sync.settings
    assert acore.store is acore.sync.store


async def test_at_most_max_workers_calls_run_at_once() -> None:
    acore = AsyncUserCore(UserCore.open("memory://", settings=make_settings()), max_workers=2)
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    peak = 0

    def hold() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait()
        with lock:
            running -= 1
        return 1

    results: list[int] = []

    async def one() -> None:
        results.append(await acore.run(hold))

    async with acore, anyio.create_task_group() as tg:
        # Released whatever happens: a running call cannot be cancelled, so a
        # failed assertion here would otherwise wait for the held threads forever.
        try:
            for _ in range(6):
                tg.start_soon(one)
            limiter = acore._pool.limiter
            with anyio.fail_after(BOUND):
                while limiter.statistics().tasks_waiting < 4 or running < 2:
                    await anyio.sleep(0.001)
            assert limiter.borrowed_tokens == 2
            assert running == 2
        finally:
            release.set()
    assert results == [1] * 6
    assert peak == 2


async def cancel_while_inside(
    acore: AsyncUserCore, event_name: str, call: Callable[[], Awaitable[object]]
) -> bool:
    """Run ``call``, cancel it while its synchronous call is held inside the core
    (at the event ``event_name``), then let that go; whether it ran to its end."""
    inside = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def stall(event: Event) -> None:
        if event.name == event_name:
            inside.set()
            release.wait()
            finished.set()

    unsubscribe = acore.events.subscribe(stall)
    try:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                assert await anyio.to_thread.run_sync(inside.wait, BOUND)
                scope.cancel()
                release.set()
    finally:
        release.set()
        unsubscribe()
    return finished.is_set()


async def test_a_cancelled_call_finishes_its_transaction_and_frees_its_worker(
    acore: AsyncUserCore,
) -> None:
    await acore.users.register(email="ada@example.com", password=PASSWORD)

    async def attempt() -> None:
        # The call's own outcome may still reach the cancelled caller: the
        # cancellation lands at its next checkpoint.
        with pytest.raises(InvalidCredentials):
            await acore.auth.login("ada@example.com", "wrong password, quite long")

    # The await was cancelled, but only after the synchronous call completed:
    # the failure was counted once, whole, and the worker slot came back.
    assert await cancel_while_inside(acore, "auth.login_failed", attempt)
    assert [1, 1] == sorted(row.failures for row in failure_rows(acore))
    assert acore._pool.limiter.borrowed_tokens == 0
    assert (await acore.auth.login("ada@example.com", PASSWORD)).access_token
    assert [] == failure_rows(acore)


def failure_rows(acore: AsyncUserCore) -> list[LoginAttempts]:
    """The lockout counters (per identifier and client, and per identifier)."""
    with acore.store.transaction(readonly=True) as tx:
        return [row for row in tx.login_attempts.list() if row.failures]


async def test_a_cancelled_registration_is_all_or_nothing(acore: AsyncUserCore) -> None:
    async def register() -> None:
        await acore.users.register(email="ada@example.com", password=PASSWORD)

    assert await cancel_while_inside(acore, "user.registered", register)
    user = await acore.users.get_by_email(SYSTEM, "ada@example.com")
    assert user.roles == frozenset({"user"})
    assert (await acore.auth.login("ada@example.com", PASSWORD)).refresh_token


async def test_wrapping_an_existing_core_and_closing_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    core = UserCore.open(url, settings=make_settings())
    async with AsyncUserCore(core) as acore:
        assert acore.sync is core
        assert acore.max_workers == DEFAULT_MAX_WORKERS
        await acore.users.register(email="ada@example.com", password=PASSWORD)
    with UserCore.open(url, settings=make_settings()) as again:
        assert again.users.get_by_email(SYSTEM, "ada@example.com").email == "ada@example.com"


async def test_open_raises_what_the_sync_open_raises(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    with pytest.raises(ValueError, match="secret_key is required") as sync_error:
        UserCore.open(url)
    with pytest.raises(ValueError, match="secret_key is required") as async_error:
        await AsyncUserCore.open(url)
    assert str(sync_error.value) == str(async_error.value)
    with pytest.raises(ValueError, match="unsupported store URL"):
        await AsyncUserCore.open("redis://localhost", settings=make_settings())


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "4"])
def test_max_workers_must_be_a_positive_integer(bad: object) -> None:
    core = UserCore.open("memory://", settings=make_settings())
    with pytest.raises(ValueError, match="max_workers"):
        AsyncUserCore(core, max_workers=bad)  # type: ignore[arg-type]


def test_only_a_usercore_can_be_wrapped() -> None:
    with pytest.raises(TypeError, match=r"AsyncUserCore\.open"):
        AsyncUserCore("memory://")  # type: ignore[arg-type]


def test_repr_shows_no_secret_and_pickling_is_refused() -> None:
    settings = make_settings()
    acore = AsyncUserCore(UserCore.open("memory://", settings=settings), max_workers=3)
    assert repr(acore) == "AsyncUserCore(UserCore(store=MemoryStore), max_workers=3)"
    assert str(settings.secret_key) not in repr(acore.users) + repr(acore.auth)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(acore)


def test_a_twin_must_keep_the_sync_name() -> None:
    from usercore.aio import _InPool
    from usercore.services.auth import AuthService

    # Python 3.11 wraps a __set_name__ failure in RuntimeError; 3.12 does not.
    with pytest.raises((TypeError, RuntimeError)) as caught:

        class Wrong:  # pragma: no cover - the class statement itself raises
            sign_in = _InPool(AuthService.login)

    assert "use the same name" in f"{caught.value} {caught.value.__cause__}"


async def test_invalid_credentials_cross_the_thread_unchanged(acore: AsyncUserCore) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        await acore.auth.login("nobody", PASSWORD)
    assert caught.value.to_dict()["code"] == "invalid_credentials"


def test_importing_usercore_does_not_import_anyio() -> None:
    code = "import sys, usercore; assert 'anyio' not in sys.modules, 'anyio imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_anyio_the_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "usercore.aio")
    monkeypatch.setitem(sys.modules, "anyio", None)
    with pytest.raises(ImportError, match=r"pip install 'usercore\[async\]'"):
        importlib.import_module("usercore.aio")


async def test_a_twin_is_bound_once_per_service(acore: AsyncUserCore) -> None:
    assert acore.auth.login is acore.auth.login
    assert acore.users.iter_all is acore.users.iter_all
    assert acore.users.get is not acore.roles.get
