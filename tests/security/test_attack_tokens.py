"""Adversarial tests for the access-token fast path and its memos.

The verified-token cache and the accepted-header memo of
:class:`~usercore.tokens.AccessTokenCodec` must never let a token through that
a fresh, uncached verification would refuse, must never be fillable by
someone without the key, and must stay consistent under concurrent use
(RFC 8725 §2-3; OWASP JWT cheat sheet).
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from usercore import Settings, TokenError
from usercore.tokens import MAX_TOKEN_LENGTH, AccessTokenCodec

SECRET = "attack-tokens-secret-" + "s" * 48
START = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_forged_headers_do_not_fill_the_header_memo() -> None:
    """The memo of accepted headers took any header that passed the header
    rules, before the signature was checked: anyone could fill its 16 slots
    with harmless variants and switch it off for every genuine token."""
    clock = Clock()
    codec = AccessTokenCodec(Settings(secret_key=SECRET), clock)
    payload = b64(b'{"sub":"1"}')
    for n in range(40):
        header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "x": n}).encode())
        with pytest.raises(TokenError):
            codec.verify(f"{header}.{payload}.{b64(b'not-the-mac' + bytes([n]))}")
    token, _ = codec.issue(user_id=1, token_version=0)
    assert codec.verify(token).user_id == 1
    assert list(codec._headers) == [token.partition(".")[0]]


class _CountingStr(str):
    hashed = 0

    def __hash__(self) -> int:
        type(self).hashed += 1
        return super().__hash__()


def test_an_oversized_token_is_refused_before_the_cache_hashes_it() -> None:
    """Hashing a megabyte header for the cache lookup is work an attacker
    chooses; the length limit comes first."""
    codec = AccessTokenCodec(Settings(secret_key=SECRET), Clock())
    huge = _CountingStr("a." * (MAX_TOKEN_LENGTH // 2) + "a")
    with pytest.raises(TokenError):
        codec.verify(huge)
    assert _CountingStr.hashed == 0


def test_codecs_with_other_settings_share_nothing() -> None:
    """Same key, another audience: a token one codec verified (and cached)
    is still refused by the other."""
    clock = Clock()
    first = AccessTokenCodec(Settings(secret_key=SECRET, audience="app-a"), clock)
    second = AccessTokenCodec(Settings(secret_key=SECRET, audience="app-b"), clock)
    token, _ = first.issue(user_id=7, token_version=0)
    assert first.verify(token).user_id == 7
    with pytest.raises(TokenError):
        second.verify(token)


def test_a_cached_token_expires_like_a_fresh_one() -> None:
    clock = Clock()
    settings = Settings(secret_key=SECRET)
    cached = AccessTokenCodec(settings, clock)
    uncached = AccessTokenCodec(settings, clock, cache_size=0)
    token, claims = cached.issue(user_id=3, token_version=0)
    assert cached.verify(token) == claims
    for seconds in (-31, -1, 0, 29, 30, 31):
        clock.now = claims.expires_at + timedelta(seconds=seconds)
        outcomes = []
        for codec in (cached, uncached):
            try:
                outcomes.append(codec.verify(token) == claims)
            except TokenError:
                outcomes.append(False)
        assert outcomes[0] == outcomes[1], seconds


def test_concurrent_verification_and_eviction_stay_consistent() -> None:
    """Eight threads verify 64 tokens through a cache of 8: constant eviction.
    Every answer is the token's own user; nothing but TokenError escapes."""
    clock = Clock()
    codec = AccessTokenCodec(Settings(secret_key=SECRET), clock, cache_size=8)
    tokens = [codec.issue(user_id=n, token_version=0)[0] for n in range(64)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(offset: int) -> None:
        try:
            start.wait(10)
            for round_ in range(30):
                for n in range(64):
                    index = (n * (offset + 1) + round_) % 64
                    if codec.verify(tokens[index]).user_id != index:
                        raise AssertionError(f"token {index} verified as another user")
                    assert len(codec._cache) <= 8
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(codec._cache) <= 8


# The group orders of the NIST curves behind ES256 and ES384 (SEC 2 §2.4.2, §2.5.1).
CURVES = {
    "ES256": ("secp256r1", 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
    "ES384": (
        "secp384r1",
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    ),
}


@pytest.mark.parametrize("algorithm", sorted(CURVES))
def test_an_ecdsa_token_has_one_text(algorithm: str) -> None:
    """ECDSA signatures are malleable: (r, s) and (r, n - s) both verify, so
    anyone holding a token can spell a second valid text of it, which a
    deny list or cache keyed by the text would not recognise.  The docs
    promise one text per token; issued tokens carry the low s, and a high s
    is refused."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from usercore import SigningKey

    curve_name, order = CURVES[algorithm]
    private = ec.generate_private_key(getattr(ec, curve_name.upper())())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    settings = Settings(
        algorithm=algorithm,
        signing_keys=[SigningKey(kid="k", algorithm=algorithm, private_key=pem)],
    )
    codec = AccessTokenCodec(settings, Clock(), cache_size=0)
    size = (order.bit_length() + 7) // 8
    for _ in range(8):  # a random s is high half the time
        token, _ = codec.issue(user_id=1, token_version=0)
        head, _, signature = token.rpartition(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        r, s = raw[:size], int.from_bytes(raw[size:], "big")
        assert s <= order // 2, "issued with a high s"
        twin = f"{head}.{b64(r + (order - s).to_bytes(size, 'big'))}"
        assert codec.verify(token).user_id == 1
        with pytest.raises(TokenError):
            codec.verify(twin)
