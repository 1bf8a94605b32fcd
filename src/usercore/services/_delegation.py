"""Who may act on what, beyond a single policy check: records that may not exist,
delegation ("cannot grant what you do not hold"), and the last ``*`` holder."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import attrs

from usercore.domain import Principal, Role, User, UserStatus
from usercore.domain.permissions import WILDCARD
from usercore.errors import ConflictError, NotFoundError, PermissionDenied
from usercore.policy import CompiledPolicy, Policy, compile_roles
from usercore.ports import UnitOfWork, UserFilter

__all__ = [
    "SELF_SERVICE_ROLES",
    "authorize_on_record",
    "holds_wildcard",
    "keep_a_wildcard_holder",
    "require_delegation",
    "role_table",
    "wildcard_holders",
]

# What self-registration hands anyone: granting it escalates nothing.
SELF_SERVICE_ROLES = frozenset({"user"})


def authorize_on_record(
    policy: Policy, actor: Principal, permission: str, owner_id: int | None
) -> None:
    """Check ``permission`` on a record that may not exist (``owner_id`` None).

    A caller allowed on any record learns whether it exists (``NotFoundError``);
    a caller who could act only on its own records gets ``PermissionDenied``
    either way, so ids cannot be probed.
    """
    if owner_id is None:
        if policy.is_allowed(actor, permission):
            raise NotFoundError("The requested resource was not found.")
        raise PermissionDenied(permission=permission)
    policy.require(actor, permission, owner_id=owner_id)


# -- delegation (issue 12 item 3) ------------------------------------------------------
#
# "Cannot grant what you do not hold" (OWASP ASVS 4.0.3 V4.1.3 least privilege,
# V4.2.1 protection against privilege escalation): the rules live in
# CompiledPolicy.explain_delegation; these helpers apply them inside the write
# transaction, on the roles as that transaction sees them.


def role_table(tx: UnitOfWork) -> CompiledPolicy:
    """The roles as this write transaction sees them, compiled.

    On PostgreSQL, reading every role in a write transaction takes the role
    version lock, so guarded writes run one at a time: two administrators
    demoting each other at once cannot both pass the last-``*`` check.
    SQLite and the memory store serialize write transactions anyway.
    """
    return _compiled(tuple(tx.roles.list()))


# Roles change rarely: compile each distinct role set once (roles are frozen and hashable).
@functools.lru_cache(maxsize=16)
def _compiled(roles: tuple[Role, ...]) -> CompiledPolicy:
    return compile_roles(roles, strict=False)


def require_delegation(
    table: CompiledPolicy,
    actor: Principal,
    *,
    grants: Iterable[str] = (),
    target: User | None = None,
) -> None:
    """``PermissionDenied`` unless ``actor`` holds every grant in ``grants`` and,
    when ``target`` is another account, holds everything that account holds
    (or holds ``*``).  ``details["permission"]`` names the first grant missing.
    """
    given = frozenset(grants)
    stored = actor.user
    if stored is not None and stored.id == actor.user_id and stored.roles != actor.roles:
        # With Settings.trust_token_roles the token's roles may predate a
        # demotion: they may still *do* what they did until the token expires,
        # but what the actor hands out is judged on its roles as stored, or a
        # demoted administrator would grant itself admin back.
        actor = attrs.evolve(actor, roles=stored.roles)
    target_roles = None if target is None or target.id == actor.user_id else target.roles
    decision = table.explain_delegation(actor, grants=given, target_roles=target_roles)
    if not decision:
        message = (
            "You cannot grant permissions you do not hold."
            if decision.permission in given
            else "You cannot act on an account more privileged than your own."
        )
        raise PermissionDenied(message, permission=decision.permission)


def holds_wildcard(table: CompiledPolicy, user: User) -> bool:
    """Whether an active account holds ``*`` through any of its roles."""
    return user.is_active and WILDCARD in table.effective_permissions(user.roles)


def wildcard_holders(tx: UnitOfWork, table: CompiledPolicy) -> int:
    """How many active accounts hold ``*`` (an account may be counted once per such role)."""
    return sum(
        tx.users.count(filter=UserFilter(role=name, status=UserStatus.ACTIVE))
        for name in sorted(table.roles)
        if WILDCARD in table.effective_permissions((name,))
    )


def keep_a_wildcard_holder(tx: UnitOfWork, actor: Principal, field: str) -> None:
    """``ConflictError`` (rolling the write back) when no active account holds ``*`` any more.

    Called inside the write transaction after a write that may have taken ``*``
    from its last holder (demotion, deactivation, deletion, a role change):
    without one the system could no longer be administered over the API.
    :data:`~usercore.SYSTEM` (scripts, the CLI) is trusted and not held back.
    """
    if not actor.is_system and not wildcard_holders(tx, role_table(tx)):
        raise ConflictError(
            "The last active account holding '*' cannot be demoted, deactivated or deleted; "
            "give '*' to another account first.",
            field=field,
        )
