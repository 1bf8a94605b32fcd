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


# -- issue 12 item 14: explicit typing and numbers no datetime can hold --------


def retyped(token: str, header: dict[str, Any]) -> str:
    """The token's claims re-signed with the right key under another header
    (signed by hand: pyjwt refuses to write some of these headers)."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', **header}).encode())}.{token.split('.')[1]}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({}, id="typ missing"),
        pytest.param({"typ": None}, id="typ null"),
        pytest.param({"typ": "JWT"}, id="typ JWT"),
        pytest.param({"typ": "refresh+jwt"}, id="another token type"),
        pytest.param({"typ": "application/jwt"}, id="application/jwt"),
        pytest.param({"typ": ["at+jwt"]}, id="typ a list"),
    ],
)
def test_a_token_without_the_access_token_type_is_rejected(
    core: UserCore, token: str, header: dict[str, Any]
) -> None:
    """RFC 8725 §3.11 (explicit typing) and RFC 9068 §4: a resource server
    checks ``typ`` is ``at+jwt``, so an ID token or any other JWT signed with
    the same key is no access token."""
    with pytest.raises(TokenError):
        core.auth.authenticate(retyped(token, header))


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
def test_the_access_token_media_type_is_accepted_in_every_spelling(
    core: UserCore, ada: User, token: str, typ: str
) -> None:
    """RFC 7515 §4.1.9: media types compare case-insensitively and may omit
    the ``application/`` prefix."""
    assert ada.id == core.auth.authenticate(retyped(token, {"typ": typ})).user_id


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1e20, id="1e20"),
        pytest.param(2**70, id="2**70"),
        pytest.param(10**400, id="10**400"),
        pytest.param(1e308, id="1e308"),
        pytest.param(float("inf"), id="Infinity"),
        pytest.param(float("-inf"), id="-Infinity"),
        pytest.param(float("nan"), id="NaN"),
        pytest.param(-(2**70), id="-2**70"),
        pytest.param(-1, id="before 1970"),
        pytest.param(253_402_300_800, id="year 10000"),
    ],
)
def test_a_time_claim_no_datetime_can_hold_is_an_invalid_token_never_a_crash(
    core: UserCore, token: str, claim: str, value: float
) -> None:
    """Issue 12 item 14: a signed ``exp=1e20`` gave ``OverflowError`` (HTTP 500).
    RFC 8725 §3.8 asks to validate every claim; RFC 7519 §2 NumericDate is
    seconds since 1970 (json.loads also accepts NaN and Infinity)."""
    with pytest.raises(TokenError) as info:
        core.auth.authenticate(resigned(token, lambda c: c.update({claim: value})))
    assert "invalid_token" == info.value.code


def test_a_subject_beyond_64_bits_is_an_invalid_token_never_a_store_error(
    core: UserCore, token: str
) -> None:
    """User ids are 64-bit in every store: a larger ``sub`` must not reach a
    query (SQLite raises ``OverflowError`` binding it)."""
    with pytest.raises(TokenError):
        core.auth.authenticate(resigned(token, lambda c: c.update(sub=str(2**63))))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"crit": ["exp"]}, id="crit"),
        pytest.param({"b64": False, "crit": ["b64"]}, id="b64 false"),
        pytest.param({"kid": None}, id="kid null"),
        pytest.param({"kid": 0}, id="kid a number"),
    ],
)
def test_a_header_extension_or_key_id_we_do_not_use_is_rejected(
    core: UserCore, token: str, header: dict[str, Any]
) -> None:
    """RFC 7515 §4.1.11: an unknown critical extension is refused; RFC 7797's
    unencoded payload is not used by access tokens; ``kid`` is a string or absent."""
    with pytest.raises(TokenError):
        core.auth.authenticate(retyped(token, {"typ": "at+jwt", **header}))


def test_padding_and_a_second_base64_spelling_of_the_signature_are_rejected(
    core: UserCore, token: str
) -> None:
    """One token, one spelling (RFC 7515 §2: base64url without padding): a
    re-spelt signature would slip past a cache or a deny list keyed by the text."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # A 32-byte HMAC is 43 characters; the last one carries 2 unused low bits,
    # so setting one spells the same bytes differently.
    respelt = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert base64.urlsafe_b64decode(respelt.split(".")[2] + "=") == base64.urlsafe_b64decode(
        token.split(".")[2] + "="
    )
    for forged in (f"{token}=", respelt):
        with pytest.raises(TokenError):
            core.auth.authenticate(forged)
