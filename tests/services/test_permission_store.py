"""Registered permissions live in the store: every process on the database knows
them, restarts keep them, and many processes registering one at once store it
once (issue 16 item 4, made durable)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from usercore import SYSTEM, ConflictError, Permission, UserCore, ValidationError
from usercore.services.events import Event

from .conftest import START, FakeClock, admin_of, make_settings, watch


def registered(events: list[Event]) -> list[str]:
    return [event.data["permission"] for event in events if event.name == "permission.registered"]


def names(core: UserCore) -> set[str]:
    return {permission.name for permission in core.permissions.list()}


def stored(core: UserCore) -> list[Permission]:
    with core.store.transaction(readonly=True) as tx:
        return tx.permissions.list()


@pytest.fixture
def second_core(
    store_kind: str, core: UserCore, open_core: Callable[..., UserCore], clock: FakeClock
) -> UserCore:
    """Another facade on the same database, as another process would open it
    (memory: a second facade on the same store object)."""
    if store_kind == "memory":
        return UserCore(core.store, make_settings(), clock=clock)
    return open_core()


def test_a_permission_registered_by_one_core_is_known_to_another(
    core: UserCore, second_core: UserCore
) -> None:
    admin = admin_of(core)
    first_events, second_events = watch(core), watch(second_core)
    assert "reports:read" not in names(second_core)  # opened before the registration
    permission = core.permissions.register(admin, "reports:read", "Read reports", exist_ok=False)
    assert START == permission.created_at
    assert "reports:read" in names(second_core)
    role = second_core.roles.create(SYSTEM, "analyst", permissions=["reports:read"])
    assert frozenset({"reports:read"}) == role.permissions
    with pytest.raises(ConflictError) as again:
        second_core.permissions.register(admin, "reports:read", "Other", exist_ok=False)
    assert "name" == again.value.field
    kept = second_core.permissions.register(admin, "reports:read", "Other")
    assert ("reports:read", "Read reports") == (kept.name, kept.description)
    assert (["reports:read"], []) == (registered(first_events), registered(second_events))


def test_a_grant_registered_elsewhere_is_found_on_a_miss_and_a_typo_still_refused(
    core: UserCore, second_core: UserCore
) -> None:
    """The second core learns of the permission only when it needs it: a role
    grant (or API-key scope) it does not know makes it read the store once."""
    core.permissions.register("invoices:approve", "Approve invoices")
    second_core.roles.create(SYSTEM, "approver", permissions=["invoices:approve"])
    second_core.roles.create(SYSTEM, "billing", permissions=["invoices:*"])
    with pytest.raises(ValidationError) as typo:
        second_core.roles.create(SYSTEM, "typo", permissions=["invoices:aprove"])
    assert {"permissions": ["unknown permission 'invoices:aprove'"]} == typo.value.errors
    core.permissions.register("exports:run")
    user = second_core.users.create(SYSTEM, email="ada@example.com", roles=["user"])
    _, key = second_core.api_keys.create(SYSTEM, user.id, name="export", scopes=["exports:run"])
    assert key


def test_registered_permissions_survive_reopening(
    store_kind: str, open_core: Callable[..., UserCore]
) -> None:
    if store_kind == "memory":
        pytest.skip("a memory store lives and dies with its process")
    first = open_core()
    first.permissions.register("reports:read", "Read reports")
    first.close()
    again = open_core()
    assert [Permission(name="reports:read", description="Read reports")] == stored(again)
    assert (
        "Read reports" == {p.name: p.description for p in again.permissions.list()}["reports:read"]
    )
    again.roles.create(SYSTEM, "analyst", permissions=["reports:read"])


def test_built_in_and_invalid_permissions_are_refused_and_never_stored(
    core: UserCore,
) -> None:
    admin = admin_of(core)
    with pytest.raises(ConflictError):
        core.permissions.register(admin, "users:read", "Mine now", exist_ok=False)
    builtin = core.permissions.register(admin, "users:read", "Mine now")
    assert "Read and list user accounts" == builtin.description
    with pytest.raises(ValidationError):
        core.permissions.register(admin, "reports:*")
    with pytest.raises(ValidationError):
        core.permissions.register(admin, "reports:read", "x" * 501)
    assert [] == stored(core)


def test_cores_registering_one_permission_at_once_store_it_once(
    store_kind: str, core: UserCore, open_core: Callable[..., UserCore], clock: FakeClock
) -> None:
    """Every worker of ``usercore serve`` starting together: no unique-key race
    escapes as an error, every caller gets the one stored permission, and one
    ``permission.registered`` is emitted."""
    count = 6
    if store_kind == "memory":
        cores = [UserCore(core.store, make_settings(), clock=clock) for _ in range(count)]
    else:
        cores = [open_core() for _ in range(count)]
    events = [watch(each) for each in cores]
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def work(n: int) -> None:
        barrier.wait()
        try:
            results[n] = cores[n].permissions.register("reports:read", f"from {n}")
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(result, Permission) for result in results), results
    assert 1 == len({(p.name, p.description) for p in results if isinstance(p, Permission)})
    assert ["reports:read"] == [name for seen in events for name in registered(seen)]
    assert 1 == len(stored(core))


def _register_in_a_process(url: str, start: Any, done: Any) -> None:
    core = UserCore.open(url, settings=make_settings())
    try:
        start.wait(60)
        permission = core.permissions.register("reports:read", "Read reports")
        done.put(permission.name)
    except Exception as exc:
        done.put(repr(exc))
    finally:
        core.close()


@pytest.mark.slow
def test_processes_registering_one_permission_at_once_store_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    UserCore.open(url, settings=make_settings()).close()  # migrated before the race
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(3), context.Queue()
    processes = [
        context.Process(target=_register_in_a_process, args=(url, start, done)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    answers = [done.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
    assert ["reports:read"] * 3 == answers
    with UserCore.open(url, settings=make_settings()) as core:
        assert ["reports:read"] == [permission.name for permission in stored(core)]
