"""``StoreUnavailable``: its shape, its HTTP answer, and a facade call on a faulty store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from usercore import Settings, UserCore
from usercore.errors import StoreUnavailable, UsercoreError
from usercore.storage import SQLiteStore
from usercore.web._core import error_response


def test_the_error_is_a_generic_503_with_retry_after() -> None:
    cause = sqlite3.OperationalError("database or disk is full: /srv/secret/path.db")
    try:
        raise StoreUnavailable(retry_after=3) from cause
    except StoreUnavailable as exc:
        error = exc
    assert isinstance(error, UsercoreError)
    assert (error.code, error.http_status, error.retry_after) == ("store_unavailable", 503, 3)
    assert error.to_dict() == {
        "code": "store_unavailable",
        "message": "The service is temporarily unavailable; try again later.",
        "details": {"retry_after": 3},
    }
    assert error.__cause__ is cause  # kept for the log, never shown
    assert StoreUnavailable(retry_after=0).retry_after == 1


def test_the_web_layer_answers_503_with_retry_after_not_500() -> None:
    response = error_response(StoreUnavailable(retry_after=2))
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    assert json.loads(response.content())["error"]["code"] == "store_unavailable"


def test_a_facade_write_on_a_read_only_database_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    settings = Settings(secret_key="s" * 32)
    with SQLiteStore(path) as store:
        UserCore(store, settings)  # seeds the built-in roles

    class ReadOnly(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.execute("PRAGMA query_only = ON")

    with SQLiteStore(path, connection_class=ReadOnly) as store:
        core = UserCore(store, settings)
        with pytest.raises(StoreUnavailable):
            core.users.register(email="ada@example.com", password="correct horse battery")
