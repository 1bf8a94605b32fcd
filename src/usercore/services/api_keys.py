"""``core.api_keys``: long-lived, scoped, revocable keys for programs.

A key's text (``uc_<prefix>_<secret>``) is returned once, at creation; the
store keeps the prefix and the SHA-256 of the secret.  A key's principal can
do no more than its scopes allow, and never more than its user.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import timedelta

import attrs

from usercore.domain import ApiKey, Principal, User
from usercore.errors import EmailNotVerified, ValidationError
from usercore.policy import CompiledPolicy
from usercore.services._context import Context
from usercore.services._delegation import authorize_on_record, require_delegation, role_table
from usercore.services._fresh import require_fresh_auth
from usercore.services._lookup import check_id, found, in_id_range
from usercore.services.sessions import unverified

__all__ = ["ApiKeyService"]

MAX_KEY_NAME_LENGTH = 100
MAX_KEYS_PER_USER = 100
# Ten years: a bound so an expiry cannot overflow datetime arithmetic.
MAX_EXPIRES_IN = timedelta(days=3650)


def _expires_in(value: object) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, int) and not isinstance(value, bool):
        if not 0 < value <= MAX_EXPIRES_IN.total_seconds():
            raise ValidationError.single("expires_in", "must be a positive number of seconds")
        delta = timedelta(seconds=value)
    else:
        raise ValidationError.single("expires_in", "must be seconds or a timedelta")
    if not timedelta(0) < delta <= MAX_EXPIRES_IN:
        raise ValidationError.single("expires_in", "must be positive and at most ten years")
    return delta


def _handed_out(
    table: CompiledPolicy, actor: Principal, user: User, scopes: frozenset[str] | None
) -> frozenset[str]:
    """The grants minting this key hands to ``actor`` (the delegation rule's input).

    A key for oneself: its scopes.  A key for another account goes to the
    minter, who then *acts as* that account, so the account's ``:own``
    grants reach its records on the minter's behalf (``users:delete:own``
    in Ada's key deletes Ada): every grant the key carries (its scopes, or
    all the account's grants) must be the minter's on any record, i.e.
    ``r:a:own`` counts as ``r:a`` (OWASP ASVS 4.0.3 V4.2.1).
    """
    if user.id == actor.user_id:
        return scopes or frozenset()
    carried = table.effective_permissions(user.roles) if scopes is None else scopes
    return frozenset(grant.removesuffix(":own") for grant in carried)


def _name_problems(name: object) -> list[str]:
    if not isinstance(name, str) or not name.strip():
        return ["must be a non-empty string"]
    if len(name) > MAX_KEY_NAME_LENGTH:
        return [f"must be at most {MAX_KEY_NAME_LENGTH} characters"]
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        return ["must not contain control characters"]
    return []


class ApiKeyService:
    """``core.api_keys``."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    def create(
        self,
        actor: Principal,
        user_id: int,
        *,
        name: str,
        scopes: Iterable[str] | None = None,
        expires_in: timedelta | int | None = None,
        current_password: str | None = None,
        client: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key for ``user_id`` (``apikeys:create``, or for oneself).

        Returns the record and the key text, which is never shown again.
        ``scopes`` limits what the key may do (``None``: whatever its user may).

        A key is a long-lived credential, so creating one needs fresh
        authentication: a login within ``Settings.fresh_auth_window`` or the
        actor's ``current_password`` (``ReauthenticationRequired``; a wrong
        one counts as a failed login from ``client``, the requester's
        address, as ``core.auth.login`` takes it).  An API key is never
        fresh, so keys cannot mint keys.  The delegation rules apply
        (``PermissionDenied``): every scope must be one the actor holds, and
        the user must not be more privileged than the actor.  While
        ``Settings.require_verified_email`` holds, an account whose email is
        not verified cannot create itself a key (``EmailNotVerified``), as it
        cannot refresh its session.
        """
        check_id(user_id)
        self._ctx.policy.require(actor, "apikeys:create", owner_id=user_id)
        problems: dict[str, list[str]] = {}
        if _name_problems(name):
            problems["name"] = _name_problems(name)
        scope_set: frozenset[str] | None = None
        if scopes is not None:
            try:
                if isinstance(scopes, str):
                    raise ValidationError.single("scopes", "must be a list of permissions")
                scope_set = self._ctx.registry.validate_grants(scopes, field="scopes")
            except ValidationError as exc:
                problems.update(exc.errors)
        try:
            lifetime = _expires_in(expires_in)
        except ValidationError as exc:
            problems.update(exc.errors)
        if problems:
            raise ValidationError(problems)
        if scope_set is None and actor.scopes is not None:
            # A scoped principal's key is bounded by its own scopes, never unrestricted.
            scope_set = actor.scopes
        require_fresh_auth(self._ctx, actor, current_password, client=client)
        expires_at = None if lifetime is None else self._ctx.clock() + lifetime
        with self._ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            table = role_table(tx)
            grants = _handed_out(table, actor, user, scope_set)
            require_delegation(table, actor, grants=grants, target=user)
            if actor.user_id == user.id and unverified(self._ctx.settings, user):
                # Settings.require_verified_email: no new credential for an
                # unverified address, as refresh refuses one (OWASP ASVS 4.0.3 V3.5).
                raise EmailNotVerified(
                    "Verify your email address before creating an API key.", user_id=user.id
                )
            if len(tx.api_keys.list_for_user(user_id)) >= MAX_KEYS_PER_USER:
                raise ValidationError.single(
                    "name", f"a user may hold at most {MAX_KEYS_PER_USER} API keys"
                )
            record, text = self._ctx.sessions.create_api_key(
                tx, user, name=name.strip(), scopes=scope_set, expires_at=expires_at
            )
        self._ctx.events.emit(
            "api_key.created", user_id=user_id, actor=actor, key_id=record.id, prefix=record.prefix
        )
        return record, text

    def list(self, actor: Principal, user_id: int) -> list[ApiKey]:
        """A user's keys, revoked ones included (``apikeys:read``, or one's own)."""
        check_id(user_id)
        self._ctx.policy.require(actor, "apikeys:read", owner_id=user_id)
        if not in_id_range(user_id):
            return []
        with self._ctx.store.transaction(readonly=True) as tx:
            return tx.api_keys.list_for_user(user_id)

    def revoke(self, actor: Principal, key_id: int) -> None:
        """Revoke a key (``apikeys:revoke``, or one's own); revoking twice is harmless.

        ``PermissionDenied`` for a key of an account more privileged than the actor.
        """
        check_id(key_id, "key_id")
        with self._ctx.store.transaction() as tx:
            record = tx.api_keys.get(key_id) if in_id_range(key_id) else None
            authorize_on_record(
                self._ctx.policy,
                actor,
                "apikeys:revoke",
                None if record is None else record.user_id,
            )
            assert record is not None
            owner = tx.users.get(record.user_id)
            if owner is not None:
                require_delegation(role_table(tx), actor, target=owner)
            if record.revoked_at is None:
                tx.api_keys.update(attrs.evolve(record, revoked_at=self._ctx.clock()))
        self._ctx.events.emit("api_key.revoked", user_id=record.user_id, actor=actor, key_id=key_id)
