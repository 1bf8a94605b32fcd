"""``/healthz`` and ``/readyz``: at the root, out of OpenAPI, honest about the store."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.web.clients import make_core
from usercore import StoreUnavailable, UserCore

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from usercore.web.fastapi import add_health_routes, create_app


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        yield core


@pytest.fixture
def client(core: UserCore) -> TestClient:
    app = create_app(core)
    add_health_routes(app, core)
    return TestClient(app)


def _store_down(core: UserCore, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every transaction fails as a lost database would; returns the list of attempts."""
    attempts: list[bool] = []

    @contextmanager
    def unavailable(*, readonly: bool = False) -> Iterator[Any]:
        attempts.append(readonly)
        raise StoreUnavailable(retry_after=7)
        yield  # pragma: no cover

    monkeypatch.setattr(core.store, "transaction", unavailable)
    return attempts


def test_both_probes_answer_200_when_all_is_well(client: TestClient) -> None:
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.json() == {"status": status}
        assert answer.headers["cache-control"] == "no-store"


def test_probes_live_at_the_root_and_stay_out_of_openapi(client: TestClient) -> None:
    assert client.get("/api/v1/healthz").status_code == 404
    assert client.get("/api/v1/readyz").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/healthz" not in paths
    assert "/readyz" not in paths


def test_healthz_never_touches_the_store(
    client: TestClient, core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _store_down(core, monkeypatch)
    assert client.get("/healthz").status_code == 200
    assert attempts == []


def test_readyz_is_503_with_retry_after_when_the_store_is_unavailable(
    client: TestClient, core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _store_down(core, monkeypatch)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"
    assert answer.json() == {"status": "unavailable"}
    assert attempts == [True]  # one read-only transaction: a cheap read
