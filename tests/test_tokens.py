"""Access-token codec: RFC 7519 claims, RFC 8725 attacks, interop, rotation, clock.

The store-backed token tests (refresh rotation, revocation, unknown users)
live with the token service; these pin the JWT layer itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from usercore import Settings, SigningKey, TokenError
from usercore.tokens import (
    API_KEY_PATTERN,
    AccessTokenCodec,
    format_api_key,
    generate_api_key,
    new_opaque_token,
    parse_api_key,
    token_digest,
)

SECRET = "test-secret-" + "k" * 40
START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codec(clock: FakeClock) -> AccessTokenCodec:
    return AccessTokenCodec(Settings(secret_key=SECRET), clock)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def resign(token: str, change: Callable[[dict[str, Any]], None], key: str = SECRET) -> str:
    """Re-sign a token's claims after ``change``, with the right key: only claims differ."""
    claims = claims_of(token)
    change(claims)
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "at+jwt"})


def test_issued_token_carries_the_standard_claims(codec: AccessTokenCodec) -> None:
    token, issued = codec.issue(user_id=42, token_version=3, roles={"user"})
    claims = claims_of(token)
    assert {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ", "ver", "roles"} == set(claims)
    assert ("usercore", "usercore", "42", "access", 3) == (
        claims["iss"],
        claims["aud"],
        claims["sub"],
        claims["typ"],
        claims["ver"],
    )
    assert int(START.timestamp()) + 15 * 60 == claims["exp"]
    assert len(unb64(claims["jti"])) >= 16  # 128 bits
    assert "at+jwt" == jwt.get_unverified_header(token)["typ"]
    assert issued == codec.verify(token)


def test_every_token_gets_a_fresh_jti(codec: AccessTokenCodec) -> None:
    jtis = {codec.issue(user_id=1, token_version=0)[1].jti for _ in range(50)}
    assert 50 == len(jtis)


def test_expired_token_is_rejected_after_the_leeway(
    codec: AccessTokenCodec, clock: FakeClock
) -> None:
    token, _ = codec.issue(user_id=1, token_version=0)
    clock.advance(minutes=15, seconds=29)
    assert 1 == codec.verify(token).user_id
    clock.advance(seconds=1)
    with pytest.raises(TokenError):
        codec.verify(token)


def test_token_from_the_future_is_rejected(codec: AccessTokenCodec, clock: FakeClock) -> None:
    clock.advance(minutes=5)
    token, _ = codec.issue(user_id=1, token_version=0)
    clock.advance(minutes=-5)
    with pytest.raises(TokenError):
        codec.verify(token)


def test_alg_none_is_rejected(codec: AccessTokenCodec) -> None:
    """RFC 8725 §2.1 / §3.1: the accepted algorithms come from settings only."""
    token, _ = codec.issue(user_id=1, token_version=0)
    header = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    forged = f"{header}.{token.split('.')[1]}."
    with pytest.raises(TokenError):
        codec.verify(forged)


def test_token_signed_with_another_key_is_rejected(codec: AccessTokenCodec) -> None:
    token, _ = codec.issue(user_id=1, token_version=0)
    forged = resign(token, lambda c: None, key="another-secret-" + "x" * 40)
    with pytest.raises(TokenError):
        codec.verify(forged)


def test_a_changed_payload_byte_breaks_the_signature(codec: AccessTokenCodec) -> None:
    token, _ = codec.issue(user_id=1, token_version=0)
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims["sub"] = "2"
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(TokenError):
        codec.verify(forged)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("audience", lambda c: c.update(aud="someone-else")),
        ("issuer", lambda c: c.update(iss="someone-else")),
        ("missing exp", lambda c: c.pop("exp")),
        ("missing jti", lambda c: c.pop("jti")),
        ("missing sub", lambda c: c.pop("sub")),
        ("missing nbf", lambda c: c.pop("nbf")),
        ("missing iat", lambda c: c.pop("iat")),
        ("wrong type", lambda c: c.update(typ="refresh")),
        ("no type", lambda c: c.pop("typ")),
        ("no version", lambda c: c.pop("ver")),
        ("non-numeric sub", lambda c: c.update(sub="admin")),
        ("string exp", lambda c: c.update(exp="9999999999")),
    ],
)
def test_claims_changed_and_resigned_with_the_right_key_are_rejected(
    codec: AccessTokenCodec, name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    token, _ = codec.issue(user_id=1, token_version=0)
    with pytest.raises(TokenError):
        codec.verify(resign(token, change))


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c"])
def test_a_token_naming_its_own_key_is_rejected(codec: AccessTokenCodec, header: str) -> None:
    """RFC 8725 §3.10: keys come from configuration, never from the token."""
    token, _ = codec.issue(user_id=1, token_version=0)
    forged = jwt.encode(
        claims_of(token),
        SECRET,
        algorithm="HS256",
        headers={header: {"kty": "oct", "k": b64(SECRET.encode())}},
    )
    with pytest.raises(TokenError):
        codec.verify(forged)


@pytest.mark.parametrize("garbage", ["", "a.b.c", "....", "x" * 9000, None, 42, b"a.b.c"])
def test_garbage_is_rejected_with_the_one_error(codec: AccessTokenCodec, garbage: object) -> None:
    with pytest.raises(TokenError):
        codec.verify(garbage)


@given(st.text(max_size=300))
def test_arbitrary_text_is_only_ever_a_token_error(text: str) -> None:
    codec = AccessTokenCodec(Settings(secret_key=SECRET), FakeClock())
    with pytest.raises(TokenError):
        codec.verify(text)


def test_rejection_reason_is_logged_without_the_token(
    codec: AccessTokenCodec, caplog: pytest.LogCaptureFixture
) -> None:
    token, _ = codec.issue(user_id=1, token_version=0)
    forged = resign(token, lambda c: c.update(aud="x"))
    with caplog.at_level(logging.INFO, logger="usercore"), pytest.raises(TokenError) as info:
        codec.verify(forged)
    assert "wrong audience" in caplog.text
    assert forged not in caplog.text
    for part in forged.split("."):
        assert part not in caplog.text
    assert "invalid_token" == info.value.code
    assert "audience" not in info.value.message.lower()


def test_tokens_interoperate_with_an_independent_jose_library(
    codec: AccessTokenCodec, clock: FakeClock
) -> None:
    """Proof of standard JWTs: joserfc verifies ours and we accept its tokens."""
    key = OctKey.import_key(SECRET.encode())
    token, _ = codec.issue(user_id=9, token_version=1)
    assert "9" == jose_jwt.decode(token, key, algorithms=["HS256"]).claims["sub"]

    now = int(clock().timestamp())
    theirs = jose_jwt.encode(
        {"alg": "HS256", "typ": "at+jwt"},
        {
            "iss": "usercore",
            "aud": "usercore",
            "sub": "9",
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": "abcdefghijklmnopqrstuv",
            "typ": "access",
            "ver": 1,
        },
        key,
    )
    assert 9 == codec.verify(theirs).user_id


def pem_pair(private: Any) -> tuple[bytes, bytes]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


ASYMMETRIC = {
    "RS256": (lambda: rsa.generate_private_key(65537, 2048), RSAKey),
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), ECKey),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate, OKPKey),
}


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # joserfc follows RFC 9864
@pytest.mark.parametrize("algorithm", sorted(ASYMMETRIC))
def test_asymmetric_algorithms_sign_and_verify_and_interoperate(
    algorithm: str, clock: FakeClock
) -> None:
    make_key, jose_key_type = ASYMMETRIC[algorithm]
    private_pem, public_pem = pem_pair(make_key())
    settings = Settings(
        algorithm=algorithm,
        signing_keys=[SigningKey(kid="k1", algorithm=algorithm, private_key=private_pem)],
    )
    codec = AccessTokenCodec(settings, clock)
    token, _ = codec.issue(user_id=5, token_version=0)
    assert "k1" == jwt.get_unverified_header(token)["kid"]
    assert 5 == codec.verify(token).user_id
    jose_key = jose_key_type.import_key(public_pem)  # type: ignore[attr-defined]
    assert "5" == jose_jwt.decode(token, jose_key, algorithms=[algorithm]).claims["sub"]


def test_hs256_forged_with_the_rs256_public_key_is_rejected(clock: FakeClock) -> None:
    """Algorithm confusion (RFC 8725 §2.1): the public key is no HMAC secret."""
    private_pem, public_pem = pem_pair(rsa.generate_private_key(65537, 2048))
    settings = Settings(
        algorithm="RS256",
        signing_keys=[SigningKey(kid="k1", algorithm="RS256", private_key=private_pem)],
    )
    codec = AccessTokenCodec(settings, clock)
    token, _ = codec.issue(user_id=5, token_version=0)
    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}).encode())
    payload = token.split(".")[1]
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{b64(signature)}"
    with pytest.raises(TokenError):
        codec.verify(forged)


def test_key_rotation_first_key_signs_all_keys_verify(clock: FakeClock) -> None:
    old = SigningKey(kid="2025", algorithm="HS256", private_key="old-" + "o" * 40)
    new = SigningKey(kid="2026", algorithm="HS256", private_key="new-" + "n" * 40)
    before = AccessTokenCodec(Settings(signing_keys=[old]), clock)
    during = AccessTokenCodec(Settings(signing_keys=[new, old]), clock)
    after = AccessTokenCodec(Settings(signing_keys=[new]), clock)
    old_token, _ = before.issue(user_id=1, token_version=0)
    new_token, _ = during.issue(user_id=1, token_version=0)
    assert "2026" == jwt.get_unverified_header(new_token)["kid"]
    assert 1 == during.verify(old_token).user_id
    assert 1 == after.verify(new_token).user_id
    with pytest.raises(TokenError):
        after.verify(old_token)


def test_a_token_with_an_unknown_kid_is_rejected(clock: FakeClock) -> None:
    key = SigningKey(kid="a", algorithm="HS256", private_key=SECRET)
    codec = AccessTokenCodec(Settings(signing_keys=[key]), clock)
    token, _ = codec.issue(user_id=1, token_version=0)
    forged = jwt.encode(claims_of(token), SECRET, algorithm="HS256", headers={"kid": "b"})
    with pytest.raises(TokenError):
        codec.verify(forged)
    unkeyed = jwt.encode(claims_of(token), SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        codec.verify(unkeyed)


def test_a_codec_without_any_key_refuses_to_start(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="secret_key is required"):
        AccessTokenCodec(Settings(), clock)


def test_opaque_tokens_carry_256_bits_and_are_stored_as_sha256() -> None:
    token = new_opaque_token()
    assert len(unb64(token)) == 32
    assert 32 == len(token_digest(token))
    assert token_digest(token) == token_digest(token)
    assert token_digest(token) != token_digest(new_opaque_token())


def test_api_keys_have_the_documented_shape() -> None:
    prefix, secret = generate_api_key()
    key = format_api_key(prefix, secret)
    assert API_KEY_PATTERN.fullmatch(key)
    assert 8 == len(prefix)
    assert len(secret) >= 43
    assert (prefix, secret) == parse_api_key(key)


@pytest.mark.parametrize(
    "key",
    [
        None,
        42,
        "",
        "uc_",
        "uc_abcdefgh",
        "uc_abcdefgh_short",
        "xx_abcdefgh_" + "a" * 43,
        "uc_abc-efgh_" + "a" * 43,
        "uc_abcdefgh_" + "a" * 42 + "!",
        "uc_abcdefgh_" + "a" * 44,
        " uc_abcdefgh_" + "a" * 43,
    ],
)
def test_malformed_api_keys_do_not_parse(key: object) -> None:
    assert parse_api_key(key) is None


def test_token_service_is_still_importable_from_tokens() -> None:
    """Sessions moved to services/sessions.py; the old import keeps resolving."""
    from usercore import tokens
    from usercore.services.sessions import SessionService

    assert tokens.TokenService is SessionService
    with pytest.raises(AttributeError):
        tokens.NoSuchName  # noqa: B018
