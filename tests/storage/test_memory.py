"""MemoryStore: the storage contract, plus what only an in-memory store can show."""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest

from usercore.domain import Role
from usercore.ports import UnitOfWork
from usercore.storage import MemoryStore
from usercore.testing import StoreContract
from usercore.testing.contract import (
    T0,
    Rollback,
    a_refresh_token,
    a_user,
    an_api_key,
    fail_after,
)


class TestMemoryStore(StoreContract):
    def make_store(self) -> MemoryStore:
        return MemoryStore()


def tables(store: MemoryStore) -> dict[str, Any]:
    """A deep copy of every table and index, including the sorted id list."""
    return copy.deepcopy(
        {
            name: value
            for name, value in vars(store).items()
            if name not in ("_lock", "_uow", "_transactions")
        }
    )


def test_a_rollback_restores_every_table_and_index_exactly() -> None:
    store = MemoryStore()
    with store.transaction() as tx:
        ada, grace = tx.users.add_many(
            [a_user("ada@example.com", username="ada", roles={"user"}), a_user("g@example.com")]
        )
        tx.roles.add(Role(name="user"))
        tx.refresh_tokens.add(a_refresh_token(b"rt", ada.id))
        tx.api_keys.add(an_api_key("prefix", grace.id))
    before = tables(store)

    def change_everything(tx: UnitOfWork) -> None:
        tx.users.update(attrs.evolve(ada, email="new@example.com", username=None))
        tx.users.delete(grace.id)
        tx.users.add(a_user("third@example.com", username="ada"))
        tx.users.remove_role("user")
        tx.roles.delete("user")
        tx.refresh_tokens.mark_used(b"rt", T0)

    with pytest.raises(Rollback):
        fail_after(store, change_everything)
    assert tables(store) == before
    assert store._user_ids == sorted(store._user_ids)


def test_a_closed_store_refuses_transactions() -> None:
    store = MemoryStore()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.transaction().__enter__()
