"""Browser sessions on both adapters: cookie transport beside bearer tokens,
CSRF protection for cookie-authenticated unsafe requests, and CORS.

OWASP CSRF Prevention Cheat Sheet (signed/double-submit cookie pattern),
OWASP ASVS 4.0.3 V3.4.1-V3.4.3 (``Secure``, ``HttpOnly``, ``SameSite``
cookies), V3.4.5 (cookie ``Path`` as narrow as it can be), V13.2.3 (CSRF
protection for cookie-authenticated state changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from usercore import UserCore
from usercore.web import CookieSessions

from .clients import ADAPTERS, PASSWORD, PREFIX, make_core

ORIGIN = "https://app.example.com"
SESSIONS = CookieSessions(secure=False)  # the test clients speak plain HTTP


class Browser:
    """A cookie-keeping client on one adapter's app with cookie sessions and CORS."""

    def __init__(self, adapter: str, core: UserCore, sessions: CookieSessions = SESSIONS):
        options: dict[str, Any] = {
            "sessions": sessions,
            "cors_origins": [ORIGIN],
            "cors_allow_credentials": True,
        }
        self.adapter = adapter
        if adapter == "fastapi":
            from fastapi.testclient import TestClient

            from usercore.web.fastapi import create_app

            self._client: Any = TestClient(create_app(core, **options))
        else:
            from usercore.web.flask import create_app as create_flask_app

            self._client = create_flask_app(core, **options).test_client()

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        url = PREFIX + path
        if self.adapter == "fastapi":
            reply = self._client.request(method, url, **kwargs)
            body = reply.json() if reply.content else None
            return reply.status_code, body, reply.headers
        flask_reply = self._client.open(url, method=method, **kwargs)
        return flask_reply.status_code, flask_reply.get_json(silent=True), flask_reply.headers

    def cookie(self, name: str, path: str = "/") -> str | None:
        if self.adapter == "fastapi":
            value: str | None = self._client.cookies.get(name, path=path)
            return value
        cookie = self._client.get_cookie(name, path=path)
        return None if cookie is None else str(cookie.value)

    def set_cookies(self, path: str) -> list[str]:
        """The Set-Cookie lines of one login."""
        body = {"email": "ada@example.com", "password": PASSWORD}
        if self.adapter == "fastapi":
            reply = self._client.post(PREFIX + path, json=body)
            return list(reply.headers.get_list("set-cookie"))
        return list(self._client.post(PREFIX + path, json=body).headers.getlist("Set-Cookie"))

    def login(self) -> dict[str, Any]:
        status, body, _ = self.request(
            "POST", "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert status == 200, body
        return dict(body)

    def csrf(self) -> dict[str, str]:
        token = self.cookie("usercore_csrf")
        assert token
        return {"X-CSRF-Token": token}


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
        yield core


@pytest.fixture(params=ADAPTERS)
def browser(request: pytest.FixtureRequest, core: UserCore) -> Browser:
    return Browser(request.param, core)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_login_sets_httponly_secure_samesite_cookies_with_a_narrow_refresh_path(
    adapter: str, core: UserCore
) -> None:
    lines = Browser(adapter, core, CookieSessions()).set_cookies("/auth/login")
    cookies = {line.split("=", 1)[0]: line for line in lines}
    # Browser-enforced prefixes by default: no sibling subdomain can toss them.
    access, refresh, csrf = (
        "__Host-usercore_access",
        "__Secure-usercore_refresh",
        "__Host-usercore_csrf",
    )
    assert set(cookies) == {access, refresh, csrf}
    for name in (access, refresh):
        assert "HttpOnly" in cookies[name]
    for line in cookies.values():
        assert "Secure" in line
        assert "SameSite=Lax" in line
        assert "Domain=" not in line  # __Host- forbids it, and nothing else needs it
    for name in (access, csrf):
        assert "Path=/;" in cookies[name]  # __Host- requires Path=/
    assert "Path=/api/v1/auth;" in cookies[refresh]
    assert "HttpOnly" not in cookies[csrf]  # the page's script echoes it


def test_plain_http_development_cookies_have_no_prefix() -> None:
    sessions = CookieSessions(secure=False)
    names = (sessions.access_cookie, sessions.refresh_cookie, sessions.csrf_cookie)
    assert ("usercore_access", "usercore_refresh", "usercore_csrf") == names


@pytest.mark.parametrize(
    "options",
    [
        {"secure": False, "access_cookie": "__Host-a"},
        {"secure": False, "csrf_cookie": "__Secure-c"},
        {"refresh_cookie": "__Host-r"},
    ],
)
def test_cookie_names_a_browser_would_drop_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="__"):
        CookieSessions(**options)


def test_a_cookie_session_authenticates_safe_requests(browser: Browser) -> None:
    browser.login()
    status, body, _ = browser.request("GET", "/auth/me")
    assert status == 200
    assert body["email"] == "ada@example.com"


def test_an_unsafe_cookie_request_needs_the_csrf_token(browser: Browser) -> None:
    me = browser.login()
    user_id = browser.request("GET", "/auth/me")[1]["id"]
    status, body, _ = browser.request("PATCH", f"/users/{user_id}", json={"name": "Ada L"})
    assert status == 403
    assert body["error"]["code"] == "csrf_failed"
    wrong = {"X-CSRF-Token": "not-the-cookie"}
    assert (
        browser.request("PATCH", f"/users/{user_id}", json={"name": "x"}, headers=wrong)[0] == 403
    )
    status, body, _ = browser.request(
        "PATCH", f"/users/{user_id}", json={"name": "Ada L"}, headers=browser.csrf()
    )
    assert status == 200
    assert body["name"] == "Ada L"
    # A bearer request never needs a CSRF token, cookies or not.
    bearer = {"Authorization": f"Bearer {me['access_token']}"}
    assert (
        browser.request("PATCH", f"/users/{user_id}", json={"name": "B"}, headers=bearer)[0] == 200
    )


def test_refresh_and_logout_work_from_cookies(browser: Browser) -> None:
    first = browser.login()
    assert browser.request("POST", "/auth/refresh")[0] == 403  # no CSRF token
    status, pair, _ = browser.request("POST", "/auth/refresh", headers=browser.csrf())
    assert status == 200
    assert pair["refresh_token"] != first["refresh_token"]
    assert browser.cookie("usercore_access") == pair["access_token"]
    assert browser.cookie("usercore_refresh", path="/api/v1/auth") == pair["refresh_token"]
    assert browser.request("POST", "/auth/logout")[0] == 403  # no CSRF token
    status, _, _ = browser.request("POST", "/auth/logout", headers=browser.csrf())
    assert status == 200
    assert browser.cookie("usercore_access") is None
    assert browser.request("GET", "/auth/me")[0] == 401
    # The session's refresh token is revoked too, not only forgotten by the browser.
    status, _, _ = browser.request(
        "POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert status == 401


def test_a_configured_origin_gets_its_preflight_answered_and_others_are_refused(
    browser: Browser,
) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "content-type, x-csrf-token",
    }
    status, _, headers = browser.request("OPTIONS", "/users/1", headers=preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "PATCH" in headers["Access-Control-Allow-Methods"]
    assert "X-CSRF-Token" in headers["Access-Control-Allow-Headers"]
    evil = {**preflight, "Origin": "https://evil.example"}
    status, _, headers = browser.request("OPTIONS", "/users/1", headers=evil)
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    # Actual answers name the allowed origin only.
    _, _, headers = browser.request("GET", "/auth/me", headers={"Origin": ORIGIN})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    _, _, headers = browser.request("GET", "/auth/me", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers
