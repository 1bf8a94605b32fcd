"""Fresh authentication for sensitive changes (OWASP ASVS 4.0.3 V3.7.1).

Changing one's own email or password, creating API keys and changing other
accounts' roles need a session that logged in within
``Settings.fresh_auth_window`` or the actor's current password.  A refreshed
access token is not fresh (a refresh proves possession of a token, not of a
credential) and an API key never is: a stolen token or key cannot take over
the account it belongs to.
"""

from __future__ import annotations

from usercore.domain import Principal
from usercore.errors import ReauthenticationRequired, ValidationError
from usercore.services._context import Context
from usercore.services._lookup import found
from usercore.services.auth import Lockout

__all__ = ["is_fresh", "require_fresh_auth"]


def is_fresh(ctx: Context, actor: Principal) -> bool:
    """Whether ``actor`` logged in (proved a credential) within the fresh-auth window."""
    if actor.is_system:
        return True
    if actor.method != "token" or actor.auth_time is None:
        return False
    age = ctx.clock() - actor.auth_time
    # A little clock skew between servers is tolerated, as on token times.
    return -ctx.settings.token_leeway <= age <= ctx.settings.fresh_auth_window


def require_fresh_auth(
    ctx: Context, actor: Principal, current_password: object = None, *, client: str | None = None
) -> None:
    """Return when ``actor`` is freshly authenticated or ``current_password`` is its
    password; raise ``ReauthenticationRequired`` otherwise.

    A wrong password is a ``ValidationError`` on ``current_password`` and
    counts as a failed login from ``client`` (the requester's address, as
    ``core.auth.login`` takes it: the same per-client and per-account
    counters and lockout, OWASP ASVS 4.0.3 V2.2.1), so the check is no
    unlimited guessing oracle for a stolen token; ``AccountLocked`` while a
    lock is in force.  API-key principals are never fresh, password or not.
    """
    if current_password is None:
        if is_fresh(ctx, actor):
            return
        raise ReauthenticationRequired()
    if actor.is_system:
        return
    if actor.method != "token" or actor.user_id is None:
        raise ReauthenticationRequired()
    if not isinstance(current_password, str):
        raise ValidationError.single("current_password", "must be a string")
    with ctx.store.transaction(readonly=True) as tx:
        user = found(tx.users.get(actor.user_id), "User")
    # Charged to the lockout before it is checked, like a login (raises
    # AccountLocked while a lock is in force).
    if Lockout(ctx).check_password(user, current_password, client=client):
        return
    ctx.events.emit("auth.reauthentication_failed", user_id=user.id, actor=actor)
    raise ValidationError.single("current_password", "is incorrect")
