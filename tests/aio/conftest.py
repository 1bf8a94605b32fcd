"""Fixtures for the async facade: one ``AsyncUserCore`` per test over memory and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services.conftest import FakeClock, make_settings, store_url
from usercore.aio import AsyncUserCore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def acore(store_kind: str, tmp_path: Path) -> AsyncIterator[AsyncUserCore]:
    """An async facade on this test's store, closed afterwards."""
    core = await AsyncUserCore.open(
        store_url(store_kind, tmp_path), settings=make_settings(), clock=FakeClock()
    )
    async with core:
        yield core
