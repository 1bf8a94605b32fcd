"""One HTTP client interface over both adapters, so every scenario runs on both."""

from __future__ import annotations

import json as json_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import argon2

from usercore import Settings, User, UserCore

PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "root@example.com"
ADMIN_PASSWORD = "the admin's long passphrase"
PREFIX = "/api/v1"
ADAPTERS = ("fastapi", "flask")
_UNSET: Any = object()


@dataclass(frozen=True)
class Reply:
    """What a test looks at: status, parsed JSON (``None`` without a body), headers."""

    status: int
    body: Any
    headers: Mapping[str, str]
    raw: bytes

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), self.raw
        assert "error" in self.body, self.body
        error: dict[str, Any] = self.body["error"]
        return error

    @property
    def code(self) -> str:
        return str(self.error["code"])

    @property
    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = self.error["details"]
        return details


@dataclass
class Outbox:
    """Tokens delivered through ``on_password_reset`` / ``on_email_verification``."""

    resets: list[tuple[str, str]] = field(default_factory=list)
    verifications: list[tuple[User, str]] = field(default_factory=list)

    def reset(self, email: str, token: str) -> None:
        self.resets.append((email, token))

    def verify(self, user: User, token: str) -> None:
        self.verifications.append((user, token))


class Client:
    """A test client for one adapter; paths are relative to ``/api/v1``."""

    def __init__(self, adapter: str, core: UserCore, outbox: Outbox):
        self.adapter = adapter
        self.core = core
        hooks: dict[str, Any] = {
            "on_password_reset": outbox.reset,
            "on_email_verification": outbox.verify,
        }
        if adapter == "fastapi":
            from fastapi.testclient import TestClient

            from usercore.web.fastapi import create_app

            self.app: Any = create_app(core, **hooks)
            self._fastapi = TestClient(self.app, raise_server_exceptions=False)
        else:
            from usercore.web.flask import create_app as create_flask_app

            self.app = create_flask_app(core, **hooks)
            self._flask = self.app.test_client()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = _UNSET,
        content: bytes | None = None,
        content_type: str | None = None,
        form: Mapping[str, str] | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        prefix: str = PREFIX,
    ) -> Reply:
        """One request; ``json`` is sent as JSON, ``content`` as raw bytes."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if content is not None and content_type is not None:
            sent["Content-Type"] = content_type
        url = prefix + path
        if self.adapter == "fastapi":
            kwargs: dict[str, Any] = {"headers": sent}
            if json is not _UNSET:
                kwargs["json"] = json
            if content is not None:
                kwargs["content"] = content
            if form is not None:
                kwargs["data"] = dict(form)
            response = self._fastapi.request(method, url, **kwargs)
            raw = response.content
            status, reply_headers = response.status_code, dict(response.headers)
        else:
            kwargs = {"method": method, "headers": sent}
            if json is not _UNSET:
                kwargs["json"] = json
            if content is not None:
                kwargs["data"] = content
            if form is not None:
                kwargs["data"] = dict(form)
            flask_response = self._flask.open(url, **kwargs)
            raw = flask_response.get_data()
            status = flask_response.status_code
            reply_headers = {key.lower(): value for key, value in flask_response.headers.items()}
        reply_headers = {key.lower(): value for key, value in reply_headers.items()}
        body = None
        if raw:
            assert reply_headers.get("content-type", "").startswith("application/json"), raw
            body = json_module.loads(raw)
        return Reply(status, body, reply_headers, raw)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Reply:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Reply:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    # -- shortcuts ----------------------------------------------------------------

    def login(self, identifier: str, password: str = PASSWORD) -> str:
        reply = self.post("/auth/login", json={"identifier": identifier, "password": password})
        assert reply.status == 200, reply.body
        token: str = reply.body["access_token"]
        return token

    def register(self, email: str, password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
        reply = self.post("/auth/register", json={"email": email, "password": password, **fields})
        assert reply.status == 201, reply.body
        user: dict[str, Any] = reply.body
        return user


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    token: str


def make_core() -> UserCore:
    return UserCore.open("memory://", settings=Settings(argon2_profile=argon2.profiles.CHEAPEST))


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of an HTTP/1.1 request from 127.0.0.1, for driving an app directly."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
