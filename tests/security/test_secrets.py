"""No secret at rest, in logs, in events or in errors.

OWASP ASVS 4.0.3 V2.4.1 (passwords stored with an approved one-way KDF),
V3.5.2 / V2.10.x (no session secrets in the clear), V7.1.1 (no credentials or
session tokens in logs), V8.3.x (sensitive data); RFC 6819 §5.1.4.1.3 (store
token hashes, not tokens).  API-key handling: malformed keys are rejected
before any store query (V2.10.4-style input checks before use).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from usercore import InvalidCredentials, TokenError, UserCore
from usercore.services.events import Event

from ..services.conftest import PASSWORD, make_settings


def test_the_database_file_holds_no_plaintext_secret(tmp_path: Path) -> None:
    """Scan every byte of the SQLite file and its WAL for what the users hold."""
    path = tmp_path / "users.db"
    with UserCore.open(f"sqlite:///{path}", settings=make_settings()) as core:
        user = core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
        pair = core.auth.login("ada", PASSWORD)
        me = core.auth.authenticate(pair.access_token)
        rotated = core.auth.refresh(pair.refresh_token)
        _, key = core.api_keys.create(me, user.id, name="ci")
        reset = core.auth.request_password_reset("ada@example.com")
        verification = core.auth.request_email_verification(me, user.id)
        assert reset is not None
        held = {
            "password": PASSWORD,
            "refresh token": pair.refresh_token,
            "rotated refresh token": rotated.refresh_token,
            "API key": key,
            "API key secret": key.rsplit("_", 1)[1],
            "reset token": reset,
            "verification token": verification,
        }
        files = [p for p in tmp_path.iterdir() if p.name.startswith("users.db")]
        raw = b"".join(p.read_bytes() for p in files)
    assert raw, "the database files were found and read"
    for what, secret in held.items():
        assert secret.encode() not in raw, f"{what} stored in the clear"


def test_malformed_keys_are_rejected_before_any_store_query(
    core: UserCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_store(*args: object, **kwargs: object) -> None:
        raise AssertionError("the store was queried")

    monkeypatch.setattr(core.store, "transaction", no_store)
    for key in ["", "uc_short", "Bearer x", "uc_abcdefgh_" + "!" * 43, None]:
        with pytest.raises(TokenError):
            core.auth.authenticate_api_key(key)  # type: ignore[arg-type]


def test_events_and_logs_never_carry_secrets(
    core: UserCore, events: list[Event], usercore_log: pytest.LogCaptureFixture
) -> None:
    """Passwords, tokens and keys used in a whole session appear in no event or log."""
    secrets_used = [PASSWORD, "second passphrase here", "third passphrase here"]
    user = core.users.register(email="ada@example.com", password=PASSWORD, username="ada")
    pair = core.auth.login("ada", PASSWORD)
    me = core.auth.authenticate(pair.access_token)
    pair2 = core.auth.refresh(pair.refresh_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        core.auth.login("ada", "wrong passphrase typed")
    _, key = core.api_keys.create(me, user.id, name="ci")
    core.auth.authenticate_api_key(key)
    core.users.change_password(me, user.id, current_password=PASSWORD, new_password=secrets_used[1])
    reset = core.auth.request_password_reset("ada@example.com")
    assert reset is not None
    core.auth.reset_password(reset, secrets_used[2])
    secrets_used += [
        "wrong passphrase typed",
        pair.access_token,
        pair.refresh_token,
        pair2.access_token,
        pair2.refresh_token,
        key,
        reset,
    ]
    text = repr([e.to_dict() for e in events]) + usercore_log.text
    for secret in secrets_used:
        assert secret not in text
    for part in pair.access_token.split("."):
        assert part not in text
