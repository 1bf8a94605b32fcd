"""Conformance to the five source API documents, one module per document.

Each module's tests are a client written literally from its document: exact
paths, field names, status codes and top-level JSON types.  ``api`` runs them
twice: against a live ``usercore serve --profile NAME`` over a socket (a
fresh SQLite database, an administrator made with ``usercore create-admin``)
and against the Flask adapter's ``create_app(core, profile=NAME)`` on a
database prepared the same way.  The module names its profile in ``PROFILE``.

Every wait is bounded and every server is terminated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from usercore import UserCore
from usercore.cli import database_url, open_core

from ..web.live import cli, serving

ADMIN_EMAIL = "admin@example.com"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "staple battery horse correct"
SECRET_KEY = "profiles-conformance-" + "k" * 48


@attrs.frozen
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # the parsed JSON, None without a body
    raw: bytes


class Api:
    """A literal client: a method, a path, a JSON body, maybe a bearer token."""

    def request(self, method: str, path: str, json: Any = None, token: str | None = None) -> Reply:
        raise NotImplementedError

    def get(self, path: str, token: str | None = None) -> Reply:
        return self.request("GET", path, token=token)

    def post(self, path: str, json: Any = None, token: str | None = None) -> Reply:
        return self.request("POST", path, json, token)

    def put(self, path: str, json: Any = None, token: str | None = None) -> Reply:
        return self.request("PUT", path, json, token)

    def delete(self, path: str, token: str | None = None) -> Reply:
        return self.request("DELETE", path, token=token)


def _headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _parsed(raw: bytes) -> Any:
    import json

    return json.loads(raw) if raw else None


class LiveApi(Api):
    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def request(self, method: str, path: str, json: Any = None, token: str | None = None) -> Reply:
        kwargs: dict[str, Any] = {"headers": _headers(token)}
        if json is not None:
            kwargs["json"] = json
        response = self.http.request(method, path, **kwargs)
        return Reply(
            response.status_code, response.headers, _parsed(response.content), response.content
        )


class FlaskApi(Api):
    def __init__(self, core: UserCore, profile: str):
        from usercore.web.flask import create_app

        self.client = create_app(core, profile=profile).test_client()

    def request(self, method: str, path: str, json: Any = None, token: str | None = None) -> Reply:
        response = self.client.open(path, method=method, json=json, headers=_headers(token))
        raw = response.get_data()
        return Reply(response.status_code, response.headers, _parsed(raw), raw)


def _env() -> dict[str, str]:
    return {**os.environ, "USERCORE_SECRET_KEY": SECRET_KEY}


def fresh_database(directory: Path) -> Path:
    """A new SQLite database holding one administrator, made with the CLI."""
    database = directory / "usercore.db"
    created = cli(
        "create-admin",
        "--db",
        str(database),
        "--email",
        ADMIN_EMAIL,
        "--username",
        ADMIN_USERNAME,
        "--password-stdin",
        env=_env(),
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    return database


@pytest.fixture(scope="module")
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    profile: str = request.module.PROFILE
    workdir = tmp_path_factory.mktemp(f"live-{profile}")
    database = fresh_database(workdir)
    args = ["--db", str(database), "--profile", profile, "--log-level", "warning"]
    with serving(args, env=_env(), workdir=workdir, log=workdir / "server.log") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def flask_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserCore]:
    database = fresh_database(tmp_path_factory.mktemp("flask"))
    core = open_core(database_url(str(database)), secret_key=SECRET_KEY)
    try:
        yield core
    finally:
        core.close()


@pytest.fixture(scope="module", params=["live", "flask"])
def api(request: pytest.FixtureRequest) -> Api:
    if request.param == "live":
        return LiveApi(request.getfixturevalue("live_server"))
    return FlaskApi(request.getfixturevalue("flask_core"), request.module.PROFILE)
