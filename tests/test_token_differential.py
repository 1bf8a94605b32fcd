"""The stdlib HMAC fast path and the pyjwt reference path give the same verdict.

``AccessTokenCodec`` verifies HS256/384/512 tokens on ``hashlib``/``hmac``;
``fast_path=False`` sends every token through pyjwt instead.  Both sit behind
the same front (compact shape) and back (header rules, claims), so they must
accept exactly the same tokens and return the same claims.  Hypothesis
tampers with genuine tokens at random (characters, segments, padding,
non-canonical base64) and re-signs hand-written headers and payloads with the
right key, a wrong key and the wrong algorithm (alg confusion, ``none``, kid
games, duplicate JSON keys, whitespace, other encodings, huge numbers, NaN).
Every token the fast path accepts is also accepted by a bare pyjwt decode.
RFC 8725 §2 lists the attacks; §3.1, §3.10, §3.11 the rules both paths keep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usercore import Settings, SigningKey, TokenError
from usercore.tokens import AccessClaims, AccessTokenCodec

SECRET = "differential-secret-" + "s" * 60
OTHER = "another-secret-" + "o" * 60
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
T = int(NOW.timestamp())
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def clock() -> datetime:
    return NOW


CONFIGS = {
    "HS256 one secret": Settings(secret_key=SECRET),
    "HS512 one secret": Settings(secret_key=SECRET, algorithm="HS512"),
    "HS256 rotation by kid": Settings(
        signing_keys=[
            SigningKey(kid="new", algorithm="HS256", private_key=SECRET),
            SigningKey(kid="old", algorithm="HS256", private_key=OTHER),
        ]
    ),
}
PAIRS = {
    name: (
        AccessTokenCodec(config, clock, cache_size=0),
        AccessTokenCodec(config, clock, fast_path=False, cache_size=0),
    )
    for name, config in CONFIGS.items()
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: bytes, payload: bytes, key: str, algorithm: str) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    digest = DIGESTS.get(algorithm, hashlib.sha256)
    mac = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(mac)}"


def verdict(codec: AccessTokenCodec, token: object) -> AccessClaims | None:
    """The claims, or ``None`` for the one ``TokenError``; anything else fails the test."""
    try:
        return codec.verify(token)
    except TokenError:
        return None


def assert_same_verdict(name: str, token: object) -> AccessClaims | None:
    fast, reference = PAIRS[name]
    expected = verdict(reference, token)
    assert expected == verdict(fast, token)
    if expected is not None:
        # Never more permissive than pyjwt itself (times aside: ours use the clock).
        assert isinstance(token, str)
        config = CONFIGS[name]
        jwt.decode(
            token,
            SECRET if not config.signing_keys else _key_of(config, token),
            algorithms=[config.algorithm],
            audience=config.audience,
            issuer=config.issuer,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    return expected


def _key_of(config: Settings, token: str) -> str | bytes:
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(key.private_key for key in config.signing_keys if key.kid == kid)
    assert key is not None
    return key


def genuine(name: str) -> str:
    return PAIRS[name][0].issue(user_id=7, token_version=2, roles={"user"})[0]


def good_claims() -> dict[str, Any]:
    return {
        "iss": "usercore",
        "aud": "usercore",
        "sub": "7",
        "iat": T,
        "nbf": T,
        "exp": T + 900,
        "jti": "j" * 22,
        "typ": "access",
        "ver": 2,
    }


names = st.sampled_from(sorted(CONFIGS))

# -- tampering with genuine tokens ------------------------------------------

edits = st.lists(
    st.tuples(
        st.sampled_from(["replace", "insert", "delete"]),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from([*ALPHABET, *".= +/\n\t", "é", "\x00", "%", "\\"]),
    ),
    min_size=1,
    max_size=4,
)


def edited(token: str, changes: list[tuple[str, int, str]]) -> str:
    for kind, where, char in changes:
        at = where % (len(token) + 1)
        if kind == "insert":
            token = token[:at] + char + token[at:]
        elif kind == "replace" and at < len(token):
            token = token[:at] + char + token[at + 1 :]
        elif at < len(token):
            token = token[:at] + token[at + 1 :]
    return token


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, changes=edits)
def test_random_character_tampering_gets_the_same_verdict(
    name: str, changes: list[tuple[str, int, str]]
) -> None:
    assert_same_verdict(name, edited(genuine(name), changes))


@settings(max_examples=150, deadline=None)
@given(
    name=names,
    segment=st.integers(min_value=0, max_value=2),
    padding=st.sampled_from(["", "=", "==", "==="]),
    low_bits=st.integers(min_value=0, max_value=3),
)
def test_padding_and_non_canonical_base64_get_the_same_verdict(
    name: str, segment: int, padding: str, low_bits: int
) -> None:
    parts = genuine(name).split(".")
    text = parts[segment]
    if len(text) % 4 in (2, 3):
        # Set unused low bits of the last character: same bytes, another spelling.
        text = text[:-1] + ALPHABET[ALPHABET.index(text[-1]) | low_bits]
    parts[segment] = text + padding
    assert_same_verdict(name, ".".join(parts))


# -- hand-written headers and payloads, re-signed ---------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
HEADER_CASES: dict[str, list[Any]] = {
    "alg": ["HS256", "HS384", "HS512", "none", "None", "RS256", "hs256", "", None, ["HS256"]],
    "typ": ["at+jwt", "application/at+jwt", "AT+JWT", "JWT", "at+jwt ", "", None, 1, ["at+jwt"]],
    "kid": ["new", "old", "other", "", None, 0, ["new"]],
    "jwk": [{"kty": "oct", "k": "c2VjcmV0"}],
    "jku": ["https://attacker.example/jwks"],
    "x5u": ["https://attacker.example/cert"],
    "x5c": [["MII..."]],
    "crit": [["exp"], ["b64"], [], "b64"],
    "b64": [True, False],
    "cty": ["JWT", "json"],
}
CLAIM_CASES: dict[str, list[Any]] = {
    "iss": ["usercore", "usercore ", "other", "", None, ["usercore"], 1],
    "aud": ["usercore", ["usercore"], ["x", "usercore"], ["x"], [], [1, "usercore"], "", None, 0],
    "sub": ["7", "07", "-7", "7.0", " 7", "\u0667", str(2**63), "9" * 20, 7, None, ""],
    "jti": ["", "j" * 22, None, 1, ["j"]],
    "typ": ["access", "refresh", "Access", None, 1],
    "ver": [2, 3, True, 2.0, "2", None, 2**80],
    "roles": [["user"], [], ["user", 1], "user", None],
    "exp": [T + 900, T - 31, T - 29, T + 0.5, 1e20, 2**70, 10**400, float("nan"), -1, True, "9"],
    "nbf": [T, T + 29, T + 31, 1e20, float("-inf"), float("inf"), "1", None, False, 0],
    "iat": [T, T + 29, T + 31, -(2**70), None, 1e308],
}
header_values = {
    field: st.sampled_from(cases) | json_values for field, cases in HEADER_CASES.items()
}
claim_values = {field: st.sampled_from(cases) | json_values for field, cases in CLAIM_CASES.items()}


@st.composite
def headers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    config = CONFIGS[name]
    header: dict[str, Any] = {"alg": config.algorithm, "typ": "at+jwt"}
    if config.signing_keys:
        header["kid"] = draw(st.sampled_from(["new", "old"]))
    for field in draw(st.lists(st.sampled_from(sorted(header_values)), max_size=3)):
        if draw(st.booleans()):
            header[field] = draw(header_values[field])
        else:
            header.pop(field, None)
    return header


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    claims = good_claims()
    for field in draw(st.lists(st.sampled_from(sorted(claim_values)), max_size=3)):
        if draw(st.booleans()):
            claims[field] = draw(claim_values[field])
        else:
            claims.pop(field, None)
    return claims


def encoded(value: dict[str, Any], style: str) -> bytes:
    """The JSON text of ``value`` written in one of the ways a forger might."""
    if style == "spaces":
        return json.dumps(value, indent=2).encode()
    if style == "duplicate sub":
        # json.loads keeps the last duplicate: both paths must read the same one.
        return b'{"sub": "8", ' + json.dumps(value).encode()[1:]
    if style == "duplicate alg at the end":
        return json.dumps(value).encode()[:-1] + b', "alg": "none"}'
    if style == "utf-16":
        return json.dumps(value).encode("utf-16")
    if style == "bom":
        return b"\xef\xbb\xbf" + json.dumps(value).encode()
    if style == "not an object":
        return json.dumps([value]).encode()
    return json.dumps(value, separators=(",", ":")).encode()


styles = st.sampled_from(
    [
        "compact",
        "compact",
        "spaces",
        "duplicate sub",
        "duplicate alg at the end",
        "utf-16",
        "bom",
        "not an object",
    ]
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=names, header_style=styles, payload_style=styles)
def test_resigned_headers_and_payloads_get_the_same_verdict(
    data: st.DataObject, name: str, header_style: str, payload_style: str
) -> None:
    header = data.draw(headers(name))
    payload = data.draw(payloads())
    key = data.draw(st.sampled_from([SECRET, SECRET, OTHER]))
    algorithm = header["alg"] if isinstance(header.get("alg"), str) else "HS256"
    token = sign(encoded(header, header_style), encoded(payload, payload_style), key, algorithm)
    assert_same_verdict(name, token)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_fast_path_accepts_what_it_should(name: str) -> None:
    """Control: well-formed tokens are accepted by both, with equal claims."""
    config = CONFIGS[name]
    header = _valid_header(name)
    token = sign(
        encoded(header, "compact"), encoded(good_claims(), "compact"), SECRET, config.algorithm
    )
    assert assert_same_verdict(name, token) is not None
    assert assert_same_verdict(name, genuine(name)) is not None


def _valid_header(name: str) -> dict[str, Any]:
    config = CONFIGS[name]
    header: dict[str, Any] = {"alg": config.algorithm, "typ": "at+jwt"}
    if config.signing_keys:
        header["kid"] = "new"
    return header


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(
    ("part", "field", "value"),
    [("header", field, value) for field, values in HEADER_CASES.items() for value in values]
    + [("header", field, "<removed>") for field in ("alg", "typ", "kid")]
    + [("payload", field, value) for field, values in CLAIM_CASES.items() for value in values]
    + [("payload", field, "<removed>") for field in CLAIM_CASES],
)
def test_each_single_change_to_a_valid_token_gets_the_same_verdict(
    name: str, part: str, field: str, value: Any
) -> None:
    """Every curated edge case alone, on an otherwise valid token: hypothesis
    combines them at random above, this makes sure none is left out."""
    header, payload = _valid_header(name), good_claims()
    changed = header if part == "header" else payload
    if value == "<removed>":
        changed.pop(field, None)
    else:
        changed[field] = value
    alg = header.get("alg")
    algorithm = alg if isinstance(alg, str) and alg in DIGESTS else CONFIGS[name].algorithm
    token = sign(encoded(header, "compact"), encoded(payload, "compact"), SECRET, algorithm)
    assert_same_verdict(name, token)


# -- the attack set of tests/security/test_jwt_attacks.py --------------------


def attack_tokens() -> list[tuple[str, str]]:
    token = genuine("HS256 one secret")
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[raw.index(b'"sub":"') + 7] ^= 0x01

    def resigned(change: dict[str, Any], drop: str = "", key: str = SECRET) -> str:
        changed = {**claims, **change}
        changed.pop(drop, None)
        return jwt.encode(changed, key, algorithm="HS256", headers={"typ": "at+jwt"})

    none_header = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    attacks = [
        ("genuine", token),
        ("alg none", f"{none_header}.{payload}."),
        ("alg none with a signature", f"{none_header}.{payload}.{signature}"),
        ("another key", resigned({}, key=OTHER)),
        ("payload byte flipped", f"{header}.{b64(bytes(raw))}.{signature}"),
        ("signature truncated", token[:-2]),
        ("signature swapped", token[:-2] + "xx"),
        ("aud changed", resigned({"aud": "another-service"})),
        ("iss changed", resigned({"iss": "another-issuer"})),
        ("exp removed", resigned({}, drop="exp")),
        ("jti removed", resigned({}, drop="jti")),
        ("iat removed", resigned({}, drop="iat")),
        ("wrong token type", resigned({"typ": "refresh"})),
        ("expired", resigned({"exp": T - 60})),
        ("exp 1e20", resigned({"exp": 1e20})),
        ("exp 2**70", resigned({"exp": 2**70})),
        ("no typ header", jwt.encode(claims, SECRET, algorithm="HS256")),
        ("garbage", "garbage"),
        ("empty", ""),
        ("not a string", b"bytes"),  # type: ignore[list-item]
        ("too long", token + "A" * 9000),
    ]
    for field in ("jwk", "jku", "x5u", "x5c"):
        attacks.append(
            (
                f"own key in {field}",
                jwt.encode(
                    claims,
                    SECRET,
                    algorithm="HS256",
                    headers={"typ": "at+jwt", field: {"kty": "oct", "k": b64(SECRET.encode())}},
                ),
            )
        )
    return attacks


@pytest.mark.parametrize(("attack", "token"), attack_tokens(), ids=[a for a, _ in attack_tokens()])
def test_every_known_attack_gets_the_same_verdict(attack: str, token: str) -> None:
    outcome = assert_same_verdict("HS256 one secret", token)
    assert (outcome is not None) == (attack == "genuine")


def test_the_fast_path_is_the_one_in_use_for_hmac() -> None:
    """Guard: the fast codec does not quietly fall back to pyjwt (it would pass
    every comparison above while measuring the wrong thing)."""
    fast, reference = PAIRS["HS256 one secret"]
    assert fast._digest is hashlib.sha256
    assert reference._digest is None


def test_a_cached_token_still_expires() -> None:
    """The verified-token cache re-checks the time window on every hit."""
    now = [NOW]
    codec = AccessTokenCodec(CONFIGS["HS256 one secret"], lambda: now[0])
    token, _ = codec.issue(user_id=7, token_version=2)
    assert 7 == codec.verify(token).user_id
    assert token in codec._cache
    now[0] += timedelta(minutes=15, seconds=31)
    with pytest.raises(TokenError):
        codec.verify(token)


def test_the_cache_stays_bounded_and_keeps_only_verified_tokens() -> None:
    codec = AccessTokenCodec(CONFIGS["HS256 one secret"], clock, cache_size=3)
    tokens = [codec.issue(user_id=n, token_version=0)[0] for n in range(1, 6)]
    for token in tokens:
        codec.verify(token)
    assert 3 == len(codec._cache)
    assert set(tokens[-3:]) == set(codec._cache)
    with pytest.raises(TokenError):
        codec.verify(tokens[0][:-2] + "xx")
    assert tokens[0][:-2] + "xx" not in codec._cache
