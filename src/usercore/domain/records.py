"""Records the token services keep in the store.

None of them holds a secret in the clear: refresh and one-time tokens are kept
as SHA-256 digests, revoked access tokens by their ``jti`` only.
"""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["OneTimeToken", "RefreshToken", "RevokedToken"]


@attrs.frozen(kw_only=True)
class RefreshToken:
    """One refresh token of a rotation family (RFC 6749 §10.4, OAuth 2.0 BCP §4.14).

    ``expires_at`` is the family's absolute expiry, copied to every rotation.
    A token with ``used_at`` set was rotated; presenting it again is a replay.
    """

    token_hash: bytes = attrs.field(repr=False)
    family_id: str
    user_id: int
    token_version: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


@attrs.frozen(kw_only=True)
class RevokedToken:
    """An access token's ``jti`` that is refused until the token would have expired."""

    jti: str
    expires_at: datetime


@attrs.frozen(kw_only=True)
class OneTimeToken:
    """A single-use token for one purpose (``password_reset``, ``email_verification``).

    ``binding`` is a digest of the account state the token was issued against
    (password hash, email); a token whose binding no longer matches is void.
    """

    token_hash: bytes = attrs.field(repr=False)
    purpose: str
    user_id: int
    binding: str = attrs.field(repr=False)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
