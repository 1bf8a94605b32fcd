"""``UserCore.open``: URLs, settings, lifecycle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from usercore import SYSTEM, Settings, UserCore
from usercore.storage.memory import MemoryStore
from usercore.storage.sqlite import SQLiteStore

from .conftest import PASSWORD, make_settings


def test_memory_url_makes_up_a_key_when_none_is_given() -> None:
    with UserCore.open("memory://") as core:
        assert isinstance(core.store, MemoryStore)
        assert core.settings.secret_key is not None
        assert len(core.settings.secret_key) >= 32


def test_sqlite_url_with_an_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    with UserCore.open(f"sqlite:///{path}", settings=make_settings()) as core:
        assert isinstance(core.store, SQLiteStore)
        core.users.register(email="ada@example.com", password=PASSWORD)
    with UserCore.open(f"sqlite:///{path}", settings=make_settings()) as core:
        assert core.users.get_by_email(SYSTEM, "ada@example.com")
    assert path.exists()


def test_sqlite_url_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with UserCore.open("sqlite:///relative.db", settings=make_settings()) as core:
        core.users.register(email="ada@example.com", password=PASSWORD)
    assert (tmp_path / "relative.db").exists()
    assert os.getcwd() == str(tmp_path)


def test_a_persistent_store_needs_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret_key is required"):
        UserCore.open(f"sqlite:///{tmp_path / 'x.db'}", settings=Settings())
    assert not (tmp_path / "x.db").exists()


def test_an_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"memory://.*sqlite:///.*postgresql://"):
        UserCore.open("mysql://localhost/db", settings=make_settings())


def test_an_empty_sqlite_path_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a path"):
        UserCore.open("sqlite:///", settings=make_settings())


def test_a_facade_works_on_any_store_object() -> None:
    store = MemoryStore()
    core = UserCore(store, make_settings())
    assert {"admin", "user"} <= {role.name for role in core.roles.list(SYSTEM)}
    core.close()


def test_a_facade_without_any_key_is_refused() -> None:
    with pytest.raises(ValueError, match="secret_key is required"):
        UserCore(MemoryStore(), Settings())


def test_the_facade_is_a_context_manager_that_closes_its_store(tmp_path: Path) -> None:
    with UserCore.open(f"sqlite:///{tmp_path / 'c.db'}", settings=make_settings()) as core:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        core.users.register(email="ada@example.com", password=PASSWORD)


def test_reopening_does_not_duplicate_builtin_roles(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    for _ in range(3):
        with UserCore.open(url, settings=make_settings()) as core:
            names = [role.name for role in core.roles.list(SYSTEM)]
    assert ["admin", "user"] == names


def test_repr_names_the_store_and_no_secret() -> None:
    with UserCore.open("memory://", settings=make_settings()) as core:
        assert "MemoryStore" in repr(core)
        assert str(core.settings.secret_key) not in repr(core)
