"""Adversarial tests of the browser-session transport (cookies + CSRF).

Login CSRF (OWASP CSRF Prevention Cheat Sheet, "Login CSRF"; OWASP ASVS
4.0.3 V13.2.3): a page on another site submits a plain HTML form to the
login route with the *attacker's* credentials.  A form post is a "simple"
cross-site request (no preflight, ``SameSite=Lax`` cookies are still set on
the top-level navigation it causes), so if the answer sets the session
cookies the victim's browser is silently signed in to the attacker's
account, and whatever the victim then types (a card number, a document)
lands there.  The CSRF token cannot help: before login there is no session
to bind it to.  Cookies are therefore set only on a JSON login, which a
browser sends cross-origin only after a CORS preflight the API refuses to
unlisted origins.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web.clients import ADAPTERS, PASSWORD, make_core
from tests.web.test_browser_sessions import Browser
from usercore import SYSTEM, UserCore

EVIL = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


@pytest.fixture
def core() -> Iterator[UserCore]:
    with make_core() as core:
        # The attacker's own account, whose credentials the hostile page posts.
        core.users.register(email="mallory@example.com", password=PASSWORD, username="mallory")
        yield core


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_cross_site_form_login_does_not_sign_the_browser_in(adapter: str, core: UserCore) -> None:
    victim = Browser(adapter, core)
    status, body, headers = victim.request(
        "POST",
        "/auth/login",
        data={"username": "mallory", "password": PASSWORD},
        headers=EVIL,
    )
    # The OAuth2 password form keeps working for API clients (tokens in the body)...
    assert status == 200
    assert body["access_token"]
    assert headers.get("cache-control") == "no-store"
    # ...but sets no session cookie: the victim's browser is not signed in.
    assert victim.cookie("usercore_access") is None
    assert victim.cookie("usercore_refresh", path="/api/v1/auth") is None
    assert victim.request("GET", "/auth/me")[0] == 401


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_login_without_a_json_media_type_sets_no_cookies(adapter: str, core: UserCore) -> None:
    # fetch(url, {method: "POST", mode: "no-cors", body: new Blob([json])}) sends no
    # Content-Type at all and needs no preflight; only an explicit JSON type does.
    victim = Browser(adapter, core)
    raw = b'{"username": "mallory", "password": "%s"}' % PASSWORD.encode()
    key = "content" if adapter == "fastapi" else "data"
    status, _, _ = victim.request("POST", "/auth/login", **{key: raw})
    assert status == 200
    assert victim.cookie("usercore_access") is None


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_json_login_still_opens_a_cookie_session(adapter: str, core: UserCore) -> None:
    browser = Browser(adapter, core)
    status, _, _ = browser.request(
        "POST", "/auth/login", json={"username": "mallory", "password": PASSWORD}
    )
    assert status == 200
    assert browser.cookie("usercore_access")
    assert browser.request("GET", "/auth/me")[1]["username"] == "mallory"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_dead_session_cookie_does_not_block_login_or_recovery(
    adapter: str, core: UserCore
) -> None:
    """Availability of recovery (OWASP ASVS 4.0.3 V2.5, V3.3): after "sign out
    everywhere" or a password change on another device, the browser still holds
    the revoked access cookie (for up to its 15-minute Max-Age).  Every route
    authenticated it, even those that need no credential, so logging in again
    answered 401 ``invalid_token`` and a password-reset request 403
    ``csrf_failed``: the owner was kept out exactly when recovering."""
    browser = Browser(adapter, core)
    status, _, _ = browser.request(
        "POST", "/auth/login", json={"username": "mallory", "password": PASSWORD}
    )
    assert status == 200
    user_id = browser.request("GET", "/auth/me")[1]["id"]
    core.auth.logout_all(SYSTEM, user_id)  # from another device
    assert browser.request("GET", "/auth/me")[0] == 401  # the cookie is dead...
    status, _, _ = browser.request(
        "POST", "/auth/password-reset", json={"email": "mallory@example.com"}
    )
    assert status == 202  # ...but recovery and a new login still work
    status, body, _ = browser.request(
        "POST", "/auth/login", json={"username": "mallory", "password": PASSWORD}
    )
    assert status == 200, body
    assert browser.request("GET", "/auth/me")[0] == 200
    # A dead *bearer* token is still an explicit credential: refused, never ignored.
    status, _, _ = browser.request(
        "POST",
        "/auth/password-reset",
        json={"email": "x@example.com"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert status == 401
