"""The JWT attack set, end to end through ``core.auth.authenticate``.

RFC 8725 (JWT BCP) §2.1 / §3.1 (algorithm verification), §3.10 (no keys from
the token), §3.11 (explicit typing); RFC 7519 §4.1 (registered claims); OWASP
ASVS 4.0.3 V3.5.3 (stateless tokens are signed and verified); OWASP JWT
cheat sheet.  Every attack must end in the one opaque ``TokenError``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from usercore import SigningKey, TokenError, User, UserCore

from ..services.conftest import PASSWORD, SECRET, FakeClock, make_settings


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def resigned(token: str, change: Callable[[dict[str, Any]], None]) -> str:
    """The token's claims changed by ``change``, re-signed with the *right* key."""
    claims = claims_of(token)
    change(claims)
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"typ": "at+jwt"})


@pytest.fixture
def token(core: UserCore, ada: User) -> str:
    return core.auth.login("ada", PASSWORD).access_token


def test_the_genuine_token_is_accepted(core: UserCore, ada: User, token: str) -> None:
    """Control: the attacks below fail because of what they change."""
    assert ada.id == core.auth.authenticate(token).user_id


def test_alg_none_is_rejected(core: UserCore, token: str) -> None:
    """RFC 8725 §2.1: the 'none' algorithm."""
    header = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    with pytest.raises(TokenError):
        core.auth.authenticate(f"{header}.{token.split('.')[1]}.")


def test_a_token_signed_with_another_key_is_rejected(core: UserCore, token: str) -> None:
    forged = jwt.encode(claims_of(token), "another-key-" + "x" * 40, algorithm="HS256")
    with pytest.raises(TokenError):
        core.auth.authenticate(forged)


def test_a_changed_payload_byte_is_rejected(core: UserCore, token: str) -> None:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b'"sub":"') + 7] ^= 0x01  # flip one bit of the subject
    with pytest.raises(TokenError):
        core.auth.authenticate(f"{header}.{b64(bytes(raw))}.{signature}")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: c.update(aud="another-service"), id="aud changed"),
        pytest.param(lambda c: c.update(iss="another-issuer"), id="iss changed"),
        pytest.param(lambda c: c.pop("exp"), id="exp removed"),
        pytest.param(lambda c: c.pop("jti"), id="jti removed"),
        pytest.param(lambda c: c.pop("iat"), id="iat removed"),
        pytest.param(lambda c: c.update(sub="999999"), id="sub of a user that does not exist"),
        pytest.param(lambda c: c.update(ver=c["ver"] + 1), id="token version forged"),
        pytest.param(lambda c: c.update(typ="refresh"), id="wrong token type"),
    ],
)
def test_claims_changed_and_resigned_with_the_right_key_are_rejected(
    core: UserCore, token: str, change: Callable[[dict[str, Any]], None]
) -> None:
    with pytest.raises(TokenError):
        core.auth.authenticate(resigned(token, change))


def test_an_expired_token_is_rejected(core: UserCore, token: str, clock: FakeClock) -> None:
    clock.advance(minutes=16)
    with pytest.raises(TokenError):
        core.auth.authenticate(token)


def test_a_refresh_token_is_no_access_token_and_the_reverse(core: UserCore, ada: User) -> None:
    pair = core.auth.login("ada", PASSWORD)
    with pytest.raises(TokenError):
        core.auth.authenticate(pair.refresh_token)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.access_token)


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c"])
def test_a_token_carrying_its_own_key_is_rejected(core: UserCore, token: str, header: str) -> None:
    """RFC 8725 §3.10: never take the verification key from the token."""
    forged = jwt.encode(
        claims_of(token),
        SECRET,
        algorithm="HS256",
        headers={header: {"kty": "oct", "k": b64(SECRET.encode())}},
    )
    with pytest.raises(TokenError):
        core.auth.authenticate(forged)


def test_hs256_forged_with_the_rs256_public_key_is_rejected(clock: FakeClock) -> None:
    """Algorithm confusion (RFC 8725 §2.1): the public key used as an HMAC secret."""
    private = rsa.generate_private_key(65537, 2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = make_settings(
        secret_key=None,
        algorithm="RS256",
        signing_keys=[SigningKey(kid="rsa-1", algorithm="RS256", private_key=private_pem)],
    )
    with UserCore.open("memory://", settings=settings, clock=clock) as core:
        core.users.register(email="ada@example.com", password=PASSWORD)
        genuine = core.auth.login("ada@example.com", PASSWORD).access_token
        assert core.auth.authenticate(genuine).user_id
        header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}).encode())
        payload = genuine.split(".")[1]
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        with pytest.raises(TokenError):
            core.auth.authenticate(f"{header}.{payload}.{b64(signature)}")


def test_every_attack_gets_the_same_opaque_error(core: UserCore, token: str) -> None:
    """One error, one message: the reason is only in the log."""
    errors = []
    for forged in (token[:-2] + "xx", resigned(token, lambda c: c.pop("exp")), "garbage"):
        with pytest.raises(TokenError) as info:
            core.auth.authenticate(forged)
        errors.append((info.value.code, info.value.message, info.value.details))
    assert 1 == len(set(map(repr, errors)))
