"""Every knob of usercore, with a safe default, validated when constructed."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal

import argon2
import attrs

from usercore.custom_fields import CustomField, check_declaration

__all__ = [
    "HMAC_ALGORITHMS",
    "REGISTRATION_MODES",
    "SUPPORTED_ALGORITHMS",
    "RegistrationMode",
    "Settings",
    "SigningKey",
]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS

# RFC 7518 §3.2: an HMAC key must be at least as long as the hash output
# (32 bytes for HS256); we ask for 32 bytes whatever the HMAC variant.
MIN_SECRET_KEY_BYTES = 32
# NIST SP 800-63B §5.1.1.2: memorized secrets are at least 8 characters.
MIN_PASSWORD_LENGTH_FLOOR = 8


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


@attrs.frozen(kw_only=True)
class SigningKey:
    """A key for asymmetric JWTs (or an extra HMAC key), identified by ``kid``.

    ``private_key`` (PEM) is needed only on the key that signs (the first in
    ``Settings.signing_keys``); verification uses ``public_key`` (PEM), or the
    secret itself for HMAC algorithms.  The key material never appears in ``repr``.
    """

    kid: str
    algorithm: str
    private_key: str | bytes | None = attrs.field(default=None, repr=False)
    public_key: str | bytes | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.kid:
            raise ValueError("SigningKey.kid must not be empty")
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"SigningKey.algorithm {self.algorithm!r} is not supported; "
                f"choose one of {sorted(SUPPORTED_ALGORITHMS)}"
            )
        if self.algorithm in HMAC_ALGORITHMS:
            if self.private_key is None:
                raise ValueError(f"SigningKey {self.kid!r}: an HMAC key needs private_key")
            if len(_key_bytes(self.private_key)) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"SigningKey {self.kid!r}: an HMAC key must be at least "
                    f"{MIN_SECRET_KEY_BYTES} bytes (RFC 7518 §3.2)"
                )
        elif self.private_key is None and self.public_key is None:
            raise ValueError(f"SigningKey {self.kid!r}: give a private_key or a public_key")


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: timedelta) -> None:
    if not isinstance(value, timedelta):
        raise TypeError(f"Settings.{attribute.name} must be a datetime.timedelta")
    if value <= timedelta(0):
        raise ValueError(f"Settings.{attribute.name} must be positive, got {value}")


def _check_secret_key(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (str, bytes)):
        raise TypeError("Settings.secret_key must be str or bytes")
    if len(_key_bytes(value)) < MIN_SECRET_KEY_BYTES:
        # The message states the rule, never the key.
        raise ValueError(
            f"Settings.secret_key must be at least {MIN_SECRET_KEY_BYTES} bytes "
            "(RFC 7518 §3.2); generate one with secrets.token_urlsafe(32)"
        )


def _check_at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"Settings.{attribute.name} must be at least 1, got {value}")


# The share of physical memory Argon2 may hold at once by default.
_HASH_MEMORY_SHARE = 4


def _default_max_concurrent_hashes(settings: Settings) -> int:
    """One hash per core, and no more than a quarter of physical memory in hashes.

    Argon2 holds ``memory_cost`` KiB per hash for its whole run and keeps a
    core busy: more hashes at once than cores only adds latency and memory.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return max(1, cores)
    per_hash = settings.argon2_profile.memory_cost * 1024
    return max(1, min(cores, memory // _HASH_MEMORY_SHARE // per_hash))


# Waiters per slot by default: a burst of logins a few times the slots waits
# (the timeout bounds each wait); a flood beyond it is refused at once, so
# parked requests never hold most of a server's worker threads.
_HASH_QUEUE_PER_SLOT = 8


def _default_hash_queue_length(settings: Settings) -> int:
    return _HASH_QUEUE_PER_SLOT * settings.max_concurrent_hashes


RegistrationMode = Literal["open", "closed", "invite"]
#: Who may create an account by self-registration (``Settings.registration``).
REGISTRATION_MODES: tuple[RegistrationMode, ...] = ("open", "closed", "invite")


def _check_registration(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in REGISTRATION_MODES:
        raise ValueError(
            f"Settings.registration must be one of {', '.join(REGISTRATION_MODES)}, got {value!r}"
        )


def _check_not_negative(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"Settings.{attribute.name} must not be negative, got {value}")


@attrs.frozen(kw_only=True)
class Settings:
    """Configuration of a :class:`~usercore.UserCore`.

    Every field has a safe default except ``secret_key``, which persistent
    stores require (``memory://`` generates a random one).  Durations are
    :class:`datetime.timedelta`.  Construction raises ``ValueError`` for an
    unsafe or inconsistent value; ``repr`` never shows key material.
    """

    secret_key: str | bytes | None = attrs.field(
        default=None, repr=False, validator=_check_secret_key
    )
    issuer: str = "usercore"
    audience: str = "usercore"
    algorithm: str = "HS256"
    signing_keys: tuple[SigningKey, ...] = attrs.field(default=(), converter=tuple, repr=False)
    access_token_ttl: timedelta = attrs.field(
        default=timedelta(minutes=15), validator=_check_positive
    )
    refresh_token_ttl: timedelta = attrs.field(
        default=timedelta(days=14), validator=_check_positive
    )
    password_reset_ttl: timedelta = attrs.field(
        default=timedelta(hours=1), validator=_check_positive
    )
    email_verification_ttl: timedelta = attrs.field(
        default=timedelta(hours=24), validator=_check_positive
    )
    # Clock skew tolerated on exp/nbf/iat (RFC 7519 §4.1.4 "small leeway").
    token_leeway: timedelta = attrs.field(default=timedelta(seconds=30))
    password_min_length: int = 12
    password_max_length: int = 1024
    argon2_profile: argon2.Parameters = argon2.profiles.RFC_9106_LOW_MEMORY
    lockout_threshold: int = attrs.field(default=5, validator=_check_at_least_one)
    lockout_base: timedelta = attrs.field(default=timedelta(seconds=60), validator=_check_positive)
    lockout_max: timedelta = attrs.field(default=timedelta(minutes=15), validator=_check_positive)
    trust_token_roles: bool = False
    # How stale another process's role changes may be before this one sees them.
    policy_refresh_interval: timedelta = attrs.field(
        default=timedelta(seconds=1), validator=_check_positive
    )
    # How long after a login the session counts as freshly authenticated for
    # sensitive changes (OWASP ASVS 4.0.3 V3.7.1); otherwise pass the current password.
    fresh_auth_window: timedelta = attrs.field(
        default=timedelta(minutes=5), validator=_check_positive
    )
    # Registration answers a taken email exactly like a new one and tells the
    # existing address instead (no account enumeration); off by default.
    registration_enumeration_safe: bool = False
    # Self-registration: "open" (anyone), "closed" (administrators create
    # accounts) or "invite" (only with an administrator's invitation).
    registration: RegistrationMode = attrs.field(default="open", validator=_check_registration)
    # Login and refresh refused (EmailNotVerified) for an account whose email
    # is not verified, once its password was found right; accounts without an
    # email (username alone) have nothing to verify and are not affected.
    require_verified_email: bool = False
    # How long an invitation (Settings.registration == "invite") stays usable.
    invitation_ttl: timedelta = attrs.field(default=timedelta(days=7), validator=_check_positive)
    # Consecutive failures for one identifier from every client together
    # before it locks for everyone (the per-client limit is lockout_threshold).
    # NIST SP 800-63B §5.2.2: no more than 100 per account; an account has at
    # most two identifiers (email, username), so 50 each.  Never below
    # lockout_threshold (the larger of the two applies).
    lockout_identifier_threshold: int = attrs.field(default=50, validator=_check_at_least_one)
    # Load shedding of password hashing (passwords.HashLimiter): at most this
    # many Argon2 hashes or verifies at once per process (default: one per
    # core, within a quarter of physical memory at argon2_profile.memory_cost),
    # at most hash_queue_length callers waiting, each at most hash_queue_timeout;
    # beyond that Overloaded (HTTP 503 + Retry-After) at once, never a hang.
    max_concurrent_hashes: int = attrs.field(
        default=attrs.Factory(_default_max_concurrent_hashes, takes_self=True),
        validator=_check_at_least_one,
    )
    hash_queue_length: int = attrs.field(
        default=attrs.Factory(_default_hash_queue_length, takes_self=True),
        validator=_check_not_negative,
    )
    hash_queue_timeout: timedelta = attrs.field(
        default=timedelta(milliseconds=500), validator=_check_positive
    )
    # The application's own fields on every user (docs/custom-fields.md):
    # validated, stored, indexed and served like the built-in ones.
    custom_fields: tuple[CustomField, ...] = attrs.field(default=(), converter=check_declaration)

    def __attrs_post_init__(self) -> None:
        if self.algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"Settings.algorithm {self.algorithm!r} is not supported; "
                f"choose one of {sorted(SUPPORTED_ALGORITHMS)}"
            )
        if self.algorithm in ASYMMETRIC_ALGORITHMS:
            if not self.signing_keys:
                raise ValueError(f"Settings.algorithm {self.algorithm} needs signing_keys")
            if self.signing_keys[0].private_key is None:
                raise ValueError("the first of Settings.signing_keys signs: give it a private_key")
        for key in self.signing_keys:
            if key.algorithm != self.algorithm:
                raise ValueError(
                    f"SigningKey {key.kid!r} uses {key.algorithm}, but Settings.algorithm is "
                    f"{self.algorithm}: one algorithm per deployment (RFC 8725 §3.1)"
                )
        kids = [key.kid for key in self.signing_keys]
        if len(set(kids)) != len(kids):
            raise ValueError("Settings.signing_keys must have distinct kids")
        if not isinstance(self.token_leeway, timedelta) or self.token_leeway < timedelta(0):
            raise ValueError("Settings.token_leeway must be a non-negative timedelta")
        if self.password_min_length < MIN_PASSWORD_LENGTH_FLOOR:
            raise ValueError(
                f"Settings.password_min_length must be at least {MIN_PASSWORD_LENGTH_FLOOR} "
                f"(NIST SP 800-63B §5.1.1.2), got {self.password_min_length}"
            )
        if self.password_min_length > self.password_max_length:
            raise ValueError(
                f"Settings.password_min_length ({self.password_min_length}) must not exceed "
                f"password_max_length ({self.password_max_length})"
            )
        if self.lockout_max < self.lockout_base:
            raise ValueError("Settings.lockout_max must not be shorter than lockout_base")
        if not self.issuer or not self.audience:
            raise ValueError("Settings.issuer and Settings.audience must not be empty")

    @property
    def secret_key_bytes(self) -> bytes | None:
        """The HMAC secret as bytes, or ``None`` when not configured."""
        return None if self.secret_key is None else _key_bytes(self.secret_key)
