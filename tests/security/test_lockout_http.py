"""Issue 12 items 7 and 12 over HTTP: the adapters pass the remote address as the
lockout's client, so guessing through the API does not lock the owner out
elsewhere (OWASP Authentication Cheat Sheet, "Account Lockout")."""

from __future__ import annotations

import pytest

from usercore import AccountLocked, UserCore

from ..web.clients import PASSWORD, Client
from ..web.conftest import client, core, outbox  # noqa: F401 - the HTTP fixtures


def test_http_guesses_lock_the_requesting_address_only(
    client: Client,  # noqa: F811
    core: UserCore,  # noqa: F811
) -> None:
    client.register("ada@example.com")
    for _ in range(5):
        reply = client.post("/auth/login", json={"email": "ada@example.com", "password": "x" * 15})
        assert 401 == reply.status
    reply = client.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert 429 == reply.status  # the guessing address is held...
    assert core.auth.login("ada@example.com", PASSWORD, client="198.51.100.7")  # ...not others
    with pytest.raises(AccountLocked):  # the adapter's address is what was counted
        core.auth.login("ada@example.com", PASSWORD, client=_test_client_address(client))


def _test_client_address(http: Client) -> str:
    # Starlette's TestClient reports "testclient"; werkzeug's test client 127.0.0.1.
    return "testclient" if http.adapter == "fastapi" else "127.0.0.1"
