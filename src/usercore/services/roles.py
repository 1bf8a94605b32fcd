"""``core.roles`` and ``core.permissions``: role CRUD and the permission registry.

Every role write is checked as a whole before it is stored: the name is a
slug, every grant is a registered permission or a wildcard over a known
resource, inherited roles exist and the inheritance graph stays acyclic.
After a write the policy of this process recompiles before its next check;
other processes see the change within ``Settings.policy_refresh_interval``.
Registered permissions live in the store, shared by every process on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import overload

import attrs

from usercore import policy as _policy
from usercore.domain import SYSTEM, Permission, Principal, Role
from usercore.domain.permissions import BUILTIN_PERMISSIONS, BUILTIN_ROLES
from usercore.errors import ConflictError, ValidationError
from usercore.policy import compile_roles, description_problems, registry_full
from usercore.ports import UnitOfWork
from usercore.services._context import Context
from usercore.services._delegation import (
    keep_a_wildcard_holder,
    require_delegation,
    role_table,
    wildcard_holders,
)
from usercore.services._lookup import found

__all__ = ["PermissionService", "RoleService", "role_name_problems"]

_ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
BUILTIN_NAMES = frozenset(role.name for role in BUILTIN_ROLES)
# The admin role is the way back in: it keeps '*' whatever else changes.
LOCKED_ROLES = frozenset({"admin"})


def role_name_problems(name: object) -> list[str]:
    """Why ``name`` is not a role name (a lowercase slug of 1-64 characters)."""
    if not isinstance(name, str):
        return ["must be a string"]
    if not _ROLE_NAME.fullmatch(name):
        return [
            "must be 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
        ]
    return []


def _names(value: object, field: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError.single(field, "must be a list of strings")
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise ValidationError.single(field, "must be a list of strings")
    return frozenset(items)


class RoleService:
    """``core.roles``."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    def _check(self, tx: UnitOfWork, role: Role) -> None:
        """Validate ``role`` against the registry and the other roles (raises
        ``ValidationError`` listing every problem)."""
        problems: dict[str, list[str]] = {}
        name_problems = role_name_problems(role.name)
        if name_problems:
            problems["name"] = name_problems
        about_description = description_problems(role.description)
        if about_description:
            problems["description"] = about_description
        try:
            self._ctx.registry.validate_grants(role.permissions)
        except ValidationError as exc:
            problems.update(exc.errors)
        if role.name in role.inherits:
            problems.setdefault("inherits", []).append("a role cannot inherit itself")
        if problems:
            raise ValidationError(problems)
        others = [existing for existing in tx.roles.list() if existing.name != role.name]
        missing = sorted(role.inherits - {other.name for other in others})
        if missing:
            raise ValidationError({"inherits": [f"unknown role {name!r}" for name in missing]})
        compile_roles([*others, role])  # strict: raises on a cycle, naming it

    def create(
        self,
        actor: Principal,
        name: str,
        *,
        permissions: Iterable[str] = (),
        inherits: Iterable[str] = (),
        description: str = "",
    ) -> Role:
        """Create a role (``roles:create``); ``ConflictError`` if the name exists,
        ``ValidationError`` on ``name`` once :data:`~usercore.policy.MAX_ROLES` exist.

        ``PermissionDenied`` when the role would grant, itself or through the
        roles it inherits, anything the actor does not hold (delegation rule).
        """
        self._ctx.policy.require(actor, "roles:create")
        role = Role(
            name=name,
            permissions=_names(permissions, "permissions"),
            inherits=_names(inherits, "inherits"),
            description=description,
        )
        with self._ctx.store.transaction() as tx:
            table = role_table(tx)
            self._check(tx, role)
            if len(table.roles) >= _policy.MAX_ROLES:
                raise ValidationError.single("name", f"at most {_policy.MAX_ROLES} roles may exist")
            grants = role.permissions | table.effective_permissions(role.inherits)
            require_delegation(table, actor, grants=grants)
            created = tx.roles.add(role)
        self._ctx.policy.invalidate()
        self._ctx.events.emit("role.created", actor=actor, role=name)
        return created

    def get(self, actor: Principal, name: str) -> Role:
        """A role by name (``roles:read``)."""
        self._ctx.policy.require(actor, "roles:read")
        if not isinstance(name, str):
            raise ValidationError.single("name", "must be a string")
        with self._ctx.store.transaction(readonly=True) as tx:
            return found(tx.roles.get(name), "Role")

    def list(self, actor: Principal) -> list[Role]:
        """Every role, by name (``roles:read``)."""
        self._ctx.policy.require(actor, "roles:read")
        with self._ctx.store.transaction(readonly=True) as tx:
            return tx.roles.list()

    def update(
        self,
        actor: Principal,
        name: str,
        *,
        permissions: Iterable[str] | None = None,
        inherits: Iterable[str] | None = None,
        description: str | None = None,
    ) -> Role:
        """Change some of a role's permissions, inheritance and description (``roles:update``).

        The built-in ``admin`` role cannot be changed.  The actor must hold
        everything the role grants, before and after the change (delegation
        rule, ``PermissionDenied``), and the change must leave an active
        account holding ``*`` (``ConflictError``).
        """
        self._ctx.policy.require(actor, "roles:update")
        new_permissions = None if permissions is None else _names(permissions, "permissions")
        new_inherits = None if inherits is None else _names(inherits, "inherits")
        changed = [
            field
            for field, value in (
                ("permissions", new_permissions),
                ("inherits", new_inherits),
                ("description", description),
            )
            if value is not None
        ]
        if not isinstance(name, str):
            raise ValidationError.single("name", "must be a string")
        if name in LOCKED_ROLES:
            raise ValidationError.single("name", f"the built-in role {name!r} cannot be changed")
        with self._ctx.store.transaction() as tx:
            before = role_table(tx)
            current = found(tx.roles.get(name), "Role")
            role = Role(
                name=current.name,
                permissions=current.permissions if new_permissions is None else new_permissions,
                inherits=current.inherits if new_inherits is None else new_inherits,
                description=current.description if description is None else description,
            )
            self._check(tx, role)
            if role == current:
                return current
            others = (known for known in before.roles.values() if known.name != name)
            after = compile_roles([*others, role], strict=False)
            grants = before.effective_permissions((name,)) | after.effective_permissions((name,))
            require_delegation(before, actor, grants=grants)
            had_holder = wildcard_holders(tx, before) > 0
            saved = tx.roles.update(role)
            if had_holder:
                keep_a_wildcard_holder(tx, actor, "permissions")
        self._ctx.policy.invalidate()
        self._ctx.events.emit("role.updated", actor=actor, role=name, fields=changed)
        return saved

    def set_permissions(self, actor: Principal, name: str, permissions: Iterable[str]) -> Role:
        """Replace a role's permissions (``roles:update``)."""
        return self.update(actor, name, permissions=permissions)

    def delete(self, actor: Principal, name: str, *, force: bool = False) -> None:
        """Delete a role (``roles:delete``).

        Refused with ``ConflictError`` while users hold it or roles inherit it,
        unless ``force``, which first takes it from those users and roles.
        The built-in ``admin`` and ``user`` roles cannot be deleted.  The
        actor must hold everything the role grants (``PermissionDenied``), and
        the last active account holding ``*`` keeps it (``ConflictError``).
        """
        self._ctx.policy.require(actor, "roles:delete")
        if not isinstance(name, str):
            raise ValidationError.single("name", "must be a string")
        if name in BUILTIN_NAMES:
            raise ConflictError(f"The built-in role {name!r} cannot be deleted.", field="name")
        with self._ctx.store.transaction() as tx:
            before = role_table(tx)
            found(tx.roles.get(name), "Role")
            require_delegation(before, actor, grants=before.effective_permissions((name,)))
            had_holder = wildcard_holders(tx, before) > 0
            holders = tx.users.count_with_role(name)
            heirs = sorted(role.name for role in tx.roles.list() if name in role.inherits)
            if (holders or heirs) and not force:
                parts = []
                if holders:
                    parts.append(f"{holders} user{'s' if holders != 1 else ''} hold it")
                if heirs:
                    parts.append(f"roles {', '.join(heirs)} inherit it")
                raise ConflictError(
                    f"Role {name!r} is in use ({'; '.join(parts)}); delete with force=True "
                    "to remove it from them.",
                    field="name",
                )
            # The role row goes first: from then on a concurrent assignment of it
            # fails its existence check, so no user is left holding a dead name.
            tx.roles.delete(name)
            tx.users.remove_role(name)
            for heir in heirs:
                role = found(tx.roles.get(heir), "Role")
                tx.roles.update(attrs.evolve(role, inherits=role.inherits - {name}))
            if had_holder:
                keep_a_wildcard_holder(tx, actor, "name")
        self._ctx.policy.invalidate()
        self._ctx.events.emit("role.deleted", actor=actor, role=name, users=holders)


def seed_builtin_roles(tx: UnitOfWork) -> bool:
    """Create the built-in roles that are missing; True if any was created."""
    created = False
    for role in BUILTIN_ROLES:
        if tx.roles.get(role.name) is None:
            tx.roles.add(role)
            created = True
    return created


class PermissionService:
    """``core.permissions``: the registry of permissions roles may grant."""

    def __init__(self, ctx: Context):
        self._ctx = ctx

    def list(self, actor: Principal = SYSTEM) -> list[Permission]:
        """Every registered permission, by name (``permissions:read``): the
        built-in ones and those registered in the store by any process.

        Without an actor the caller is :data:`~usercore.SYSTEM`: in-process
        code (app setup, the CLI) is trusted; the HTTP layer passes its caller.
        """
        self._ctx.policy.require(actor, "permissions:read")
        registry = self._ctx.registry
        registry.reload()
        return registry.list()

    @overload
    def register(
        self,
        actor: Principal,
        name: str,
        /,
        description: str = "",
        *,
        exist_ok: bool = True,
    ) -> Permission: ...

    @overload
    def register(self, name: str, /, *, description: str = "") -> Permission: ...

    @overload
    def register(self, name: str, description: str, /) -> Permission: ...

    def register(
        self,
        actor_or_name: Principal | str,
        name: str | None = None,
        /,
        description: str = "",
        *,
        exist_ok: bool = True,
    ) -> Permission:
        """Register an application permission (``resource:action``) so roles can grant it.

        ``register(actor, name, description="")`` needs ``permissions:register``
        (``PermissionDenied`` otherwise); ``register(name, description="")``
        is in-process app setup and acts as :data:`~usercore.SYSTEM`.  An
        invalid name or description is a ``ValidationError`` (per field).
        The permission is written to the store, so every process sharing it
        knows it from then on, restarts included.  Registering a name that
        exists (built-in, or stored by any process) is harmless and returns
        it as it is (the first description stays), or is a ``ConflictError``
        (``field`` ``"name"``) with ``exist_ok=False``.  Safe to run at once
        in many processes (every worker of ``usercore serve --permissions``):
        exactly one of them stores it and emits ``permission.registered``.
        """
        if isinstance(actor_or_name, Principal):
            actor = actor_or_name
            if name is None:
                raise TypeError("register(actor, name, description='') needs a name")
        else:
            # The in-process form: its second positional argument is the description.
            actor, name, description = (
                SYSTEM,
                actor_or_name,
                (description if name is None else name),
            )
        self._ctx.policy.require(actor, "permissions:register")
        registry = self._ctx.registry
        registry.check(name, description)
        builtin = registry.builtin(name)  # refused (exist_ok=False) or returned as it is
        if builtin is not None:
            permission, added = builtin, False
        else:
            permission, added = self._store(name, description)
        if not added and not exist_ok:
            raise ConflictError("The permission is already registered.", field="name")
        registry.learn([permission])
        if added:
            self._ctx.events.emit("permission.registered", actor=actor, permission=permission.name)
        return permission

    def _store(self, name: str, description: str) -> tuple[Permission, bool]:
        """The stored permission called ``name``, stored now if missing; and whether it was."""
        store = self._ctx.store
        with store.transaction(readonly=True) as tx:
            existing = tx.permissions.get(name)
        if existing is not None:  # the usual case at start-up: no write lock taken
            return existing, False
        try:
            with store.transaction() as tx:
                existing = tx.permissions.get(name)
                if existing is not None:
                    return existing, False
                # The bound of every registry that will load it (built-ins included).
                room = _policy.MAX_REGISTERED_PERMISSIONS - len(BUILTIN_PERMISSIONS)
                if len(tx.permissions.list()) >= room:
                    raise ValidationError({"name": [registry_full()]})
                new = Permission(name=name, description=description, created_at=self._ctx.clock())
                return tx.permissions.add(new), True
        except ConflictError:
            # Another process stored it between our read and our insert.
            with store.transaction(readonly=True) as tx:
                existing = tx.permissions.get(name)
            if existing is None:
                raise
            return existing, False
