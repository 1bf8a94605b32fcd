"""``HashLimiter``: at most N password hashes at once, a short queue, then ``Overloaded``."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import argon2
import pytest

from usercore import Overloaded, Settings
from usercore.passwords import HashLimiter, PasswordHasher
from usercore.web._core import error_response

CHEAP = argon2.profiles.CHEAPEST


@contextmanager
def held(limiter: HashLimiter, count: int) -> Iterator[None]:
    """``count`` other threads hold a slot each until the block ends."""
    entered = threading.Barrier(count + 1)
    release = threading.Event()

    def hold() -> None:
        with limiter.slot():
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    entered.wait()
    try:
        yield
    finally:
        release.set()
        for thread in threads:
            thread.join()


def test_a_full_queue_is_refused_at_once_with_retry_after() -> None:
    # A one-hour timeout: the test would hang if the refusal waited.
    limiter = HashLimiter(2, queue=0, timeout=3600, retry_after=2)
    with held(limiter, 2), pytest.raises(Overloaded) as info, limiter.slot():
        pytest.fail("a third hash ran while two slots were busy")
    assert (info.value.http_status, info.value.code, info.value.retry_after) == (
        503,
        "overloaded",
        2,
    )
    assert limiter.refused == 1
    assert (limiter.busy, limiter.waiting) == (0, 0)


def test_a_queued_caller_past_its_timeout_is_refused_and_never_runs() -> None:
    limiter = HashLimiter(1, queue=5, timeout=0.05)
    ran = []
    with held(limiter, 1), pytest.raises(Overloaded), limiter.slot():
        ran.append(True)
    assert ran == []
    assert limiter.waiting == 0


def test_a_queued_caller_gets_the_slot_freed_before_its_timeout() -> None:
    limiter = HashLimiter(1, queue=1, timeout=30)
    release = threading.Event()
    started = threading.Event()
    done: list[str] = []

    def holder() -> None:
        with limiter.slot():
            started.set()
            release.wait()

    def waiter() -> None:
        with limiter.slot():
            done.append("waiter")

    first = threading.Thread(target=holder)
    first.start()
    started.wait()
    second = threading.Thread(target=waiter)
    second.start()
    while limiter.waiting == 0:
        threading.Event().wait(0.001)
    assert done == []
    release.set()
    first.join()
    second.join()
    assert done == ["waiter"]
    assert limiter.refused == 0


def test_slots_are_reentrant_so_a_verify_that_rehashes_cannot_deadlock() -> None:
    limiter = HashLimiter(1, queue=0, timeout=0)
    hasher = PasswordHasher(CHEAP, limiter=limiter)
    old = PasswordHasher(dataclasses.replace(CHEAP, time_cost=2)).hash("pw")
    with hasher.slot():  # a caller holding the slot around the whole login
        matched, new_hash = hasher.verify(old, "pw")  # verify + hash inside
        hasher.dummy_verify("pw")
    assert matched
    assert new_hash is not None
    assert (limiter.busy, limiter.refused) == (0, 0)


@pytest.mark.parametrize("operation", ["hash", "verify", "dummy_verify"])
def test_every_hasher_operation_goes_through_the_limiter(operation: str) -> None:
    limiter = HashLimiter(1, queue=0, timeout=0)
    hasher = PasswordHasher(CHEAP, limiter=limiter)
    stored = hasher.hash("pw")
    calls = {
        "hash": lambda: hasher.hash("pw"),
        "verify": lambda: hasher.verify(stored, "pw"),
        "dummy_verify": lambda: hasher.dummy_verify("pw"),
    }
    with held(limiter, 1), pytest.raises(Overloaded):
        calls[operation]()


def test_a_hasher_without_a_limiter_is_not_limited() -> None:
    hasher = PasswordHasher(CHEAP)
    assert hasher.limiter is None
    with hasher.slot(), hasher.slot():
        assert hasher.verify(hasher.hash("pw"), "pw") == (True, None)


def test_from_settings_limits_by_the_settings() -> None:
    settings = Settings(
        argon2_profile=CHEAP,
        max_concurrent_hashes=3,
        hash_queue_length=7,
        hash_queue_timeout=timedelta(seconds=2),
    )
    limiter = PasswordHasher.from_settings(settings).limiter
    assert limiter is not None
    assert (limiter.slots, limiter.queue, limiter.timeout, limiter.retry_after) == (3, 7, 2.0, 2)


def test_the_default_is_a_hash_per_parallelism_cores_within_a_quarter_of_memory() -> None:
    import os

    settings = Settings()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # An Argon2 hash runs one thread per lane: p=4 keeps four cores busy.
    lanes = settings.argon2_profile.parallelism
    assert 1 <= settings.max_concurrent_hashes <= max(1, (cores or 1) // lanes)
    one_lane = dataclasses.replace(CHEAP, parallelism=1, memory_cost=8)
    assert Settings(argon2_profile=one_lane).max_concurrent_hashes == (cores or 1)
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    per_hash = settings.argon2_profile.memory_cost * 1024
    assert settings.max_concurrent_hashes * per_hash <= max(per_hash, memory // 4)
    assert settings.hash_queue_length == 8 * settings.max_concurrent_hashes
    # A profile too heavy for a quarter of memory still gets one slot.
    huge = dataclasses.replace(CHEAP, memory_cost=2**31)
    assert Settings(argon2_profile=huge).max_concurrent_hashes == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_concurrent_hashes", 0), ("hash_queue_length", -1), ("hash_queue_timeout", timedelta(0))],
)
def test_limiter_settings_are_validated(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_the_web_layer_answers_503_with_retry_after() -> None:
    response = error_response(Overloaded(retry_after=1))
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
