"""Settings: DESIGN §4 defaults, validation on construction, no key in repr."""

from __future__ import annotations

from datetime import timedelta

import argon2
import pytest

from usercore import Settings, SigningKey

KEY = "k" * 32


def test_defaults_match_the_design() -> None:
    settings = Settings()
    assert settings.secret_key is None
    assert ("usercore", "usercore", "HS256") == (
        settings.issuer,
        settings.audience,
        settings.algorithm,
    )
    assert () == settings.signing_keys
    assert timedelta(minutes=15) == settings.access_token_ttl
    assert timedelta(days=14) == settings.refresh_token_ttl
    assert (12, 1024) == (settings.password_min_length, settings.password_max_length)
    assert argon2.profiles.RFC_9106_LOW_MEMORY == settings.argon2_profile
    assert 5 == settings.lockout_threshold
    assert timedelta(seconds=60) == settings.lockout_base
    assert timedelta(minutes=15) == settings.lockout_max
    assert settings.trust_token_roles is False
    assert timedelta(seconds=1) == settings.policy_refresh_interval


@pytest.mark.parametrize("key", ["short", b"x" * 31, "é" * 15])
def test_a_secret_key_under_32_bytes_is_rejected(key: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(secret_key=key)


def test_a_multibyte_key_counts_bytes_not_characters() -> None:
    assert Settings(secret_key="é" * 16).secret_key_bytes == ("é" * 16).encode()


@pytest.mark.parametrize(
    "field",
    [
        "access_token_ttl",
        "refresh_token_ttl",
        "password_reset_ttl",
        "email_verification_ttl",
        "lockout_base",
        "policy_refresh_interval",
    ],
)
@pytest.mark.parametrize("value", [timedelta(0), timedelta(seconds=-1)])
def test_a_duration_that_is_not_positive_is_rejected(field: str, value: timedelta) -> None:
    with pytest.raises(ValueError, match=field):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_a_min_password_length_under_8_is_rejected() -> None:
    with pytest.raises(ValueError, match="NIST SP 800-63B"):
        Settings(password_min_length=7)


def test_a_min_password_length_above_max_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        Settings(password_min_length=30, password_max_length=20)


def test_lockout_max_shorter_than_base_is_rejected() -> None:
    with pytest.raises(ValueError, match="lockout_max"):
        Settings(lockout_base=timedelta(minutes=5), lockout_max=timedelta(minutes=1))


def test_lockout_threshold_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="lockout_threshold"):
        Settings(lockout_threshold=0)


def test_an_unknown_algorithm_is_rejected() -> None:
    with pytest.raises(ValueError, match="not supported"):
        Settings(algorithm="none")


def test_an_asymmetric_algorithm_needs_a_signing_key() -> None:
    with pytest.raises(ValueError, match="needs signing_keys"):
        Settings(algorithm="RS256")


def test_signing_keys_must_use_the_configured_algorithm() -> None:
    key = SigningKey(kid="a", algorithm="HS512", private_key=KEY)
    with pytest.raises(ValueError, match="one algorithm per deployment"):
        Settings(secret_key=KEY, signing_keys=[key])


def test_signing_key_kids_must_be_distinct() -> None:
    keys = [SigningKey(kid="a", algorithm="HS256", private_key=KEY)] * 2
    with pytest.raises(ValueError, match="distinct kids"):
        Settings(signing_keys=keys)


def test_an_hmac_signing_key_under_32_bytes_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SigningKey(kid="a", algorithm="HS256", private_key="short")


def test_repr_never_shows_key_material() -> None:
    secret = "s3cr3t-" + "x" * 40
    settings = Settings(
        secret_key=secret,
        signing_keys=[SigningKey(kid="k1", algorithm="HS256", private_key=secret + "2")],
    )
    assert secret not in repr(settings)
    assert secret not in repr(settings.signing_keys[0])
    assert secret not in str(settings)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.issuer = "other"  # type: ignore[misc]
