"""The compiled RBAC policy: ``is_allowed`` / ``require`` / ``explain``.

Roles are compiled into a table once (role -> every permission it holds,
inherited ones included) and, lazily, per distinct set of roles a principal
holds (their union).  A check is then a few set lookups: does the principal's
union meet the handful of grants that satisfy the permission (``*``,
``resource:*``, ``resource:action`` and, on the principal's own records, the
``:own`` forms)?  A check never writes, never queries the store on its own
account and never keeps state about role names nobody defined.

:class:`Policy` keeps a compiled table fresh: :meth:`Policy.invalidate`
(called by the roles service after a write) makes the next check recompile,
and a cheap version probe, at most once per ``refresh_interval``, picks up
changes that other processes made to a shared database.

See ``docs/rbac.md`` for the concepts.
"""

from __future__ import annotations

import builtins
import logging
import math
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType

from usercore.domain.model import Decision, Permission, Principal, Role
from usercore.domain.permissions import (
    ADMIN_ROLE,
    BUILTIN_PERMISSIONS,
    BUILTIN_ROLES,
    USER_ROLE,
    WILDCARD,
    check_probes,
    permission_problems,
)
from usercore.errors import PermissionDenied, ValidationError

__all__ = [
    "ADMIN_ROLE",
    "BUILTIN_PERMISSIONS",
    "BUILTIN_ROLES",
    "DEFAULT_ROLE_SET_CACHE_SIZE",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_REGISTERED_PERMISSIONS",
    "MAX_ROLES",
    "USER_ROLE",
    "CompiledPolicy",
    "PermissionLoader",
    "PermissionRegistry",
    "Policy",
    "RoleLoader",
    "VersionProbe",
    "compile_roles",
    "covers",
    "description_problems",
    "find_cycle",
]

logger = logging.getLogger("usercore.policy")

RoleLoader = Callable[[], tuple[int, Sequence[Role]]]
"""Returns the store's role version and every role, read in one transaction."""

VersionProbe = Callable[[], int]
"""Returns the store's role version: one cheap read, no role data."""

PermissionLoader = Callable[[], Sequence[Permission]]
"""Returns the permissions registered in the store, by any process sharing it."""

DEFAULT_ROLE_SET_CACHE_SIZE = 1024
"""How many distinct multi-role sets a compiled policy remembers before it starts over."""

_EMPTY: frozenset[str] = frozenset()


def find_cycle(roles: Iterable[Role]) -> list[str] | None:
    """A cycle in the roles' ``inherits`` graph as ``[a, b, c, a]``, or ``None``.

    The roles service calls this on the proposed set of roles before it writes.
    Inherited names that are not among ``roles`` are ignored here (see
    :func:`compile_roles` for those).  The search is iterative, so inheritance
    chains of any depth are fine, and deterministic (names in sorted order).
    """
    graph = {role.name: sorted(role.inherits) for role in roles}
    finished: set[str] = set()
    for start in sorted(graph):
        if start in finished:
            continue
        path = [start]
        on_path = {start: 0}
        stack = [iter(graph[start])]
        while stack:
            for child in stack[-1]:
                if child not in graph or child in finished:
                    continue
                if child in on_path:
                    return [*path[on_path[child] :], child]
                on_path[child] = len(path)
                path.append(child)
                stack.append(iter(graph[child]))
                break
            else:
                stack.pop()
                node = path.pop()
                del on_path[node]
                finished.add(node)
    return None


def _graph_problems(roles: Mapping[str, Role]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    cycle = find_cycle(roles.values())
    if cycle is not None:
        problems.setdefault("inherits", []).append("cycle: " + " → ".join(cycle))
    for name in sorted(roles):
        role = roles[name]
        for parent in sorted(role.inherits - roles.keys()):
            problems.setdefault("inherits", []).append(
                f"role {name!r} inherits unknown role {parent!r}"
            )
        for grant in sorted(role.permissions, key=str):
            for problem in permission_problems(grant):
                problems.setdefault("permissions", []).append(
                    f"role {name!r}: invalid permission {grant!r}: {problem}"
                )
    return problems


def _effective_acyclic(roles: Mapping[str, Role]) -> dict[str, frozenset[str]]:
    """Each role's grants plus everything it inherits, in one post-order walk."""
    effective: dict[str, frozenset[str]] = {}
    for start in sorted(roles):
        if start in effective:
            continue
        path = [start]
        stack = [iter(sorted(roles[start].inherits & roles.keys()))]
        while stack:
            for child in stack[-1]:
                if child not in effective:
                    path.append(child)
                    stack.append(iter(sorted(roles[child].inherits & roles.keys())))
                    break
            else:
                stack.pop()
                node = path.pop()
                role = roles[node]
                effective[node] = role.permissions.union(
                    *(effective[parent] for parent in role.inherits if parent in roles)
                )
    return effective


def _effective_any(roles: Mapping[str, Role]) -> dict[str, frozenset[str]]:
    """Like :func:`_effective_acyclic` but tolerating cycles: one search per role."""
    effective: dict[str, frozenset[str]] = {}
    for start in roles:
        seen = {start}
        queue = deque([start])
        while queue:
            for parent in roles[queue.popleft()].inherits:
                if parent in roles and parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        effective[start] = frozenset().union(*(roles[name].permissions for name in seen))
    return effective


def compile_roles(
    roles: Iterable[Role],
    *,
    version: int = 0,
    strict: bool = True,
    cache_size: int = DEFAULT_ROLE_SET_CACHE_SIZE,
) -> CompiledPolicy:
    """Compile roles into the table checks run on.

    Pure.  With ``strict`` (the default) raises :class:`ValidationError` for
    a cycle (``{"inherits": ["cycle: a → b → c → a"]}``), a role inheriting a
    role that does not exist, a malformed grant or a duplicate role name, so
    the roles service can check a proposed change before writing it.  With
    ``strict=False`` (what :class:`Policy` uses on whatever the store holds)
    those are logged instead: a missing inherited role grants nothing, a
    cycle makes its roles share their grants, a malformed grant matches
    nothing.  Registry membership is checked elsewhere
    (:meth:`PermissionRegistry.validate_grants`): it does not change what a
    grant means.
    """
    table: dict[str, Role] = {}
    duplicates: list[str] = []
    for role in roles:
        if role.name in table:
            duplicates.append(f"duplicate role {role.name!r}")
        table[role.name] = role
    problems = _graph_problems(table)
    if duplicates:
        problems["name"] = duplicates
    if problems:
        if strict:
            raise ValidationError(problems)
        logger.warning("role definitions have problems, compiled leniently: %s", problems)
    if "inherits" in problems and find_cycle(table.values()) is not None:
        effective = _effective_any(table)
    else:
        effective = _effective_acyclic(table)
    return CompiledPolicy(roles=table, effective=effective, version=version, cache_size=cache_size)


_Probes = tuple[frozenset[str], frozenset[str]]
_PROBES: dict[str, _Probes] = {}
_PROBES_MAX = 4096


def _probes(permission: str) -> _Probes | None:
    """The (any record, own records) grants satisfying a check; ``None`` if malformed.

    The one memo of probes: a plain dict (cheaper to hit than ``lru_cache``)
    that starts over when full, so arbitrary strings cannot grow it without
    limit; malformed strings are never stored.
    """
    pair = _PROBES.get(permission)
    if pair is not None:
        return pair
    probes = check_probes(permission)
    if probes is None:
        return None
    if len(_PROBES) >= _PROBES_MAX:
        _PROBES.clear()
    pair = _PROBES[permission] = (probes.anyone, probes.own)
    return pair


def covers(held: Iterable[str], grant: str) -> bool:
    """Whether a set of grants includes everything ``grant`` gives.

    Wildcards count (``users:*`` covers ``users:update`` and
    ``users:update:own``; ``*`` covers everything), while an ``:own`` grant
    covers only ``:own`` grants (``users:update:own`` does not cover
    ``users:update``).  A malformed ``grant`` is covered by nothing.
    """
    probes = _probes(grant)
    if probes is None:
        return False
    # For an unscoped grant ``anyone`` holds exactly the grants that include it;
    # for an ``:own`` one, check_probes already folds the ``:own`` forms in.
    held_set = held if isinstance(held, (set, frozenset)) else frozenset(held)
    return not probes[0].isdisjoint(held_set)


def _grant_rank(grant: str) -> tuple[bool, bool, bool, str]:
    # Explain the most specific grant: exact before resource:* before *, any-record before :own.
    return (grant == WILDCARD, ":*" in grant, grant.endswith(":own"), grant)


class CompiledPolicy:
    """An immutable compiled role table and the checks that run on it.

    Made by :func:`compile_roles`.  The only state that changes after
    construction is a bounded memo of role-set unions, filled only with sets
    of *defined* roles: a principal naming unknown roles gets nothing for them
    and adds nothing here.  Safe to share between threads.
    """

    __slots__ = ("_cache_size", "_effective", "_fixed", "_memo", "_names", "_roles", "version")

    def __init__(
        self,
        *,
        roles: Mapping[str, Role],
        effective: Mapping[str, frozenset[str]],
        version: int = 0,
        cache_size: int = DEFAULT_ROLE_SET_CACHE_SIZE,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.version = version
        """The store's role version this table was compiled from."""
        self._roles: Mapping[str, Role] = MappingProxyType(dict(roles))
        self._effective: Mapping[str, frozenset[str]] = MappingProxyType(dict(effective))
        self._names = frozenset(self._roles)
        # The empty set and every single role are always known; the memo
        # starts with them and returns to them when it is full.
        fixed: dict[frozenset[str], frozenset[str]] = {_EMPTY: _EMPTY}
        for name, grants in self._effective.items():
            fixed[frozenset((name,))] = grants
        self._fixed: Mapping[frozenset[str], frozenset[str]] = MappingProxyType(fixed)
        self._memo: dict[frozenset[str], frozenset[str]] = dict(fixed)
        self._cache_size = cache_size

    @property
    def roles(self) -> Mapping[str, Role]:
        """The compiled roles by name (read-only)."""
        return self._roles

    @property
    def cached_role_sets(self) -> int:
        """How many role sets the memo holds (single roles and the empty set included)."""
        return len(self._memo)

    def effective_permissions(self, roles: Iterable[str]) -> frozenset[str]:
        """Every grant the given roles hold, inherited ones included; unknown roles add nothing."""
        key = roles if isinstance(roles, frozenset) else frozenset(roles)
        grants = self._memo.get(key)
        return grants if grants is not None else self._union(key)

    def _union(self, roles: frozenset[str]) -> frozenset[str]:
        known = roles & self._names
        grants = self._memo.get(known)
        if grants is None:
            effective = self._effective
            grants = _EMPTY.union(*(effective[name] for name in known))
            memo = self._memo
            if len(memo) >= len(self._fixed) + self._cache_size:
                # Over the cap: start over rather than track recency on the hot path.
                memo.clear()
                memo.update(self._fixed)
            memo[known] = grants
        return grants

    def is_allowed(
        self, principal: Principal, permission: str, *, owner_id: int | None = None
    ) -> bool:
        """Whether ``principal`` may do ``permission`` (on a record owned by ``owner_id``).

        Deny by default: no roles, unknown roles, an unknown or malformed
        permission all answer ``False``; :data:`~usercore.domain.SYSTEM`
        always ``True``.  ``:own`` grants count only when ``owner_id`` is the
        principal's ``user_id``.  An API-key principal (``scopes`` not
        ``None``) also needs a scope that allows the permission.
        """
        # The hot path, the one check (Policy.is_allowed calls it): a memoized
        # probe pair, one dict lookup, one or two isdisjoint calls.
        # Principal.is_system spelled out: a property call costs a seventh of a check.
        if principal.method == "system":
            return True
        probes = _PROBES.get(permission)
        if probes is None:
            probes = _probes(permission)
            if probes is None:
                return False
        anyone, own_grants = probes
        grants = self._memo.get(principal.roles)
        if grants is None:
            grants = self._union(principal.roles)
        own = owner_id is not None and owner_id == principal.user_id
        if grants.isdisjoint(anyone) and (not own or grants.isdisjoint(own_grants)):
            return False
        scopes = principal.scopes
        return (
            scopes is None
            or not scopes.isdisjoint(anyone)
            or (own and not scopes.isdisjoint(own_grants))
        )

    def require(
        self, principal: Principal, permission: str, *, owner_id: int | None = None
    ) -> None:
        """Return quietly when :meth:`is_allowed`; otherwise raise :class:`PermissionDenied`."""
        if not self.is_allowed(principal, permission, owner_id=owner_id):
            raise PermissionDenied(permission=permission)

    def explain(
        self, principal: Principal, permission: str, *, owner_id: int | None = None
    ) -> Decision:
        """The same answer as :meth:`is_allowed`, with the grant and the role chain behind it.

        ``chain`` runs from one of the principal's roles through the roles it
        inherits to the grant, e.g. ``("user", "editor", "viewer",
        "reports:read")``, choosing the shortest chain (then the most specific
        grant).  ``rule`` is one sentence for a human; denials say why.
        """
        if principal.is_system:
            return Decision(
                allowed=True,
                permission=permission,
                rule="allowed: SYSTEM is the trusted in-process principal; every check passes",
            )
        probes = check_probes(permission)
        if probes is None:
            reasons = "; ".join(permission_problems(permission))
            return Decision(
                allowed=False,
                permission=permission,
                rule=f"denied: {permission!r} is not a valid permission ({reasons})",
            )
        own = owner_id is not None and owner_id == principal.user_id
        usable = probes.anyone | probes.own if own else probes.anyone
        known = principal.roles & self._names
        unknown = sorted(principal.roles - self._names)
        note = f"; unknown roles grant nothing: {', '.join(unknown)}" if unknown else ""
        found = self._shortest_chain(known, usable)
        if found is None:
            return Decision(
                allowed=False,
                permission=permission,
                rule=self._denial(principal, permission, probes.own, known, owner_id) + note,
            )
        chain, grant = found
        rule = f"allowed: role {chain[-1]!r} grants {grant!r}"
        if len(chain) > 1:
            rule += f", inherited along {' → '.join(chain)}"
        if grant.endswith(":own"):
            rule += ", which covers the principal's own records"
        scopes = principal.scopes
        if scopes is not None:
            matching = sorted(scopes & usable, key=_grant_rank)
            if not matching:
                return Decision(
                    allowed=False,
                    permission=permission,
                    rule=f"denied: the roles grant {permission!r} (role {chain[-1]!r}: "
                    f"{grant!r}), but the API key's scopes do not",
                )
            rule += f"; the API key's scope {matching[0]!r} allows it"
        return Decision(
            allowed=True,
            permission=permission,
            grant=grant,
            chain=(*chain, grant),
            rule=rule + note,
        )

    def holds(self, principal: Principal, grant: str) -> bool:
        """Whether ``principal`` holds everything ``grant`` gives (see :func:`covers`).

        Its roles must cover the grant and, for an API key, so must its scopes.
        :data:`~usercore.domain.SYSTEM` holds everything.
        """
        if principal.is_system:
            return True
        if not covers(self.effective_permissions(principal.roles), grant):
            return False
        return principal.scopes is None or covers(principal.scopes, grant)

    def explain_delegation(
        self,
        principal: Principal,
        *,
        grants: Iterable[str] = (),
        target_roles: Iterable[str] | None = None,
    ) -> Decision:
        """Whether ``principal`` may hand out ``grants`` and act on an account
        holding ``target_roles``, and which rule refuses if not.

        Two rules ("cannot grant what you do not hold"): every grant must be one
        the principal holds itself (:meth:`holds`; for roles and inheritance,
        pass their effective permissions), and an account whose effective
        permissions exceed the principal's may be acted on only by a holder of
        ``*`` (the account's ``:own`` grants do not count: they reach no
        further than the account being acted on).  ``Decision.permission``
        names the first grant that is missing.
        """
        if principal.is_system:
            return Decision(
                allowed=True,
                permission=WILDCARD,
                rule="allowed: SYSTEM is the trusted in-process principal; every check passes",
            )
        missing = sorted({grant for grant in grants if not self.holds(principal, grant)})
        if missing:
            return Decision(
                allowed=False,
                permission=missing[0],
                rule="denied by the delegation rule: the principal cannot grant "
                f"{', '.join(map(repr, missing))}, which it does not hold itself",
            )
        if target_roles is not None and not self.holds(principal, WILDCARD):
            # ``:own`` grants give power over the account itself, which the actor
            # is acting on anyway: only what the account may do to *others* counts.
            above = sorted(
                grant
                for grant in self.effective_permissions(target_roles)
                if not grant.endswith(":own") and not self.holds(principal, grant)
            )
            if above:
                return Decision(
                    allowed=False,
                    permission=above[0],
                    rule="denied by the privilege rule: the account holds "
                    f"{', '.join(map(repr, above))}, which the principal does not; only a "
                    "holder of '*' may act on a more privileged account",
                )
        return Decision(
            allowed=True, permission="", rule="allowed: the principal holds every grant involved"
        )

    def _denial(
        self,
        principal: Principal,
        permission: str,
        own_probes: frozenset[str],
        known: frozenset[str],
        owner_id: int | None,
    ) -> str:
        if not principal.roles:
            return "denied: the principal holds no roles"
        if not known:
            return f"denied: no defined role of the principal grants {permission!r}"
        own_only = self._shortest_chain(known, own_probes) if own_probes else None
        if own_only is not None:
            chain, grant = own_only
            whose = (
                "no owner_id was given"
                if owner_id is None
                else "the record is not the principal's"
                if principal.user_id is not None
                else "the principal has no user id"
            )
            return (
                f"denied: role {chain[-1]!r} grants only {grant!r}, for the principal's "
                f"own records, and {whose}"
            )
        return f"denied: no role of the principal grants {permission!r}"

    def _shortest_chain(
        self, sources: frozenset[str], usable: frozenset[str]
    ) -> tuple[tuple[str, ...], str] | None:
        """Breadth-first from the principal's roles to the nearest role holding a usable grant."""
        roles = self._roles
        parent: dict[str, str | None] = {}
        queue: deque[str] = deque()
        for name in sorted(sources):
            parent[name] = None
            queue.append(name)
        while queue:
            name = queue.popleft()
            role = roles[name]
            matched = role.permissions & usable
            if matched:
                chain = [name]
                step = parent[name]
                while step is not None:
                    chain.append(step)
                    step = parent[step]
                return tuple(reversed(chain)), min(matched, key=_grant_rank)
            for inherited in sorted(role.inherits):
                if inherited in roles and inherited not in parent:
                    parent[inherited] = name
                    queue.append(inherited)
        return None


class Policy:
    """The policy the facade exposes as ``core.policy``: checks on an always-fresh table.

    ``loader`` reads the store's role version and every role (one transaction);
    ``version_probe`` reads only the version.  The first check loads; after
    :meth:`invalidate` the next check reloads; otherwise a check probes the
    version at most once per ``refresh_interval`` (measured on ``monotonic``)
    and reloads only when it changed.  So a role change is visible at once in
    the process that made it and within ``refresh_interval`` everywhere else,
    and between probes a check touches no store at all.

    Thread-safe: loading and compiling happen under a lock and publish an
    immutable :class:`CompiledPolicy`; checks read it without locking.
    """

    def __init__(
        self,
        loader: RoleLoader,
        *,
        version_probe: VersionProbe,
        refresh_interval: timedelta = timedelta(seconds=1),
        monotonic: Callable[[], float] = time.monotonic,
        cache_size: int = DEFAULT_ROLE_SET_CACHE_SIZE,
    ) -> None:
        if refresh_interval <= timedelta(0):
            raise ValueError("refresh_interval must be positive")
        self._loader = loader
        self._version_probe = version_probe
        self._interval = refresh_interval.total_seconds()
        self._monotonic = monotonic
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._compiled = CompiledPolicy(roles={}, effective={}, version=-1, cache_size=cache_size)
        self._dirty = True
        self._next_probe = -math.inf

    @classmethod
    def from_roles(
        cls, roles: Iterable[Role], *, cache_size: int = DEFAULT_ROLE_SET_CACHE_SIZE
    ) -> Policy:
        """A policy over a fixed set of roles, checked strictly now (no store; tests, scripts)."""
        compiled = compile_roles(roles, cache_size=cache_size)
        fixed = list(compiled.roles.values())

        def load() -> tuple[int, Sequence[Role]]:
            return 0, fixed

        policy = cls(load, version_probe=lambda: 0, cache_size=cache_size)
        policy._compiled = compiled
        policy._dirty = False
        policy._next_probe = math.inf
        return policy

    def invalidate(self) -> None:
        """Make the next check reload and recompile the roles.

        The roles service calls this right after committing a role change, so
        the change applies to the very next check in this process.
        """
        with self._lock:
            self._dirty = True
            self._next_probe = -math.inf

    def refresh_due(self, within: float = 0.0) -> bool:
        """Whether a check made in the next ``within`` seconds may read the store
        first (a probe falls due, or :meth:`invalidate` asked for a reload).

        Between probes a check reads no store: an async server runs one on its
        event loop only while this is false, else in a worker thread.
        """
        return self._monotonic() + within >= self._next_probe

    @property
    def compiled(self) -> CompiledPolicy:
        """The current compiled table (refreshed first if a refresh is due)."""
        if self._monotonic() < self._next_probe:
            return self._compiled
        return self._refresh()

    def _refresh(self) -> CompiledPolicy:
        with self._lock:
            now = self._monotonic()
            compiled = self._compiled
            if not self._dirty and now < self._next_probe:
                return compiled  # another thread refreshed while we waited
            # On failure nothing below is updated: the next check tries again.
            if self._dirty or self._version_probe() != compiled.version:
                version, roles = self._loader()
                compiled = compile_roles(
                    roles, version=version, strict=False, cache_size=self._cache_size
                )
                self._compiled = compiled
            self._dirty = False
            self._next_probe = now + self._interval
            return compiled

    def is_allowed(
        self, principal: Principal, permission: str, *, owner_id: int | None = None
    ) -> bool:
        """Whether ``principal`` may do ``permission``; see :meth:`CompiledPolicy.is_allowed`.

        Deny by default; ``SYSTEM`` passes everything; ``:own`` grants need
        ``owner_id == principal.user_id``; API keys are held to their scopes.
        """
        compiled = self._compiled if self._monotonic() < self._next_probe else self._refresh()
        return compiled.is_allowed(principal, permission, owner_id=owner_id)

    def require(
        self, principal: Principal, permission: str, *, owner_id: int | None = None
    ) -> None:
        """Return quietly when allowed; otherwise raise :class:`PermissionDenied`.

        What services call before acting: ``details`` carries the permission
        (never the principal's roles).
        """
        if not self.is_allowed(principal, permission, owner_id=owner_id):
            raise PermissionDenied(permission=permission)

    def explain(
        self, principal: Principal, permission: str, *, owner_id: int | None = None
    ) -> Decision:
        """Why a check passes or fails; see :meth:`CompiledPolicy.explain`."""
        return self.compiled.explain(principal, permission, owner_id=owner_id)

    def effective_permissions(self, roles: Iterable[str]) -> frozenset[str]:
        """Every grant the given roles hold, inherited ones included."""
        return self.compiled.effective_permissions(roles)

    def holds(self, principal: Principal, grant: str) -> bool:
        """Whether ``principal`` holds ``grant``; see :meth:`CompiledPolicy.holds`."""
        return self.compiled.holds(principal, grant)

    def explain_delegation(
        self,
        principal: Principal,
        *,
        grants: Iterable[str] = (),
        target_roles: Iterable[str] | None = None,
    ) -> Decision:
        """The delegation rules' answer; see :meth:`CompiledPolicy.explain_delegation`."""
        return self.compiled.explain_delegation(principal, grants=grants, target_roles=target_roles)


# -- the registry ---------------------------------------------------------------------
#
# Which permissions exist, so typos in roles are errors: the built-in
# permissions plus those the application registers.  Roles and API-key scopes
# may only name registered permissions or wildcards over known resources;
# anything else is a ValidationError.  On a UserCore the registered ones live
# in the store (core.permissions.register writes them there), so every process
# on the database knows them: the registry loads them at start and reads the
# store again before refusing a grant it does not know.


MAX_DESCRIPTION_LENGTH = 500
MAX_REGISTERED_PERMISSIONS = 10_000
"""How many permissions a registry holds at most (built-ins included): a
holder of ``permissions:register`` must not grow the process without bound
(OWASP API Security Top 10 2023, API4 unrestricted resource consumption).
``core.permissions.register`` holds the store to the same number."""
MAX_ROLES = 1_000
"""How many roles may exist at most (built-ins included): every guarded write
reads and compiles them all, and so does every process at its first check
after a role change, so a holder of ``roles:create`` must not make each
request slower without bound (OWASP API Security Top 10 2023, API4; the
figures are in docs/performance.md).  ``core.roles.create`` refuses more."""


def registry_full() -> str:
    """The message for a registration beyond :data:`MAX_REGISTERED_PERMISSIONS`."""
    return f"the registry holds at most {MAX_REGISTERED_PERMISSIONS} permissions"


def description_problems(description: object) -> builtins.list[str]:
    """Why ``description`` is not a role's or a permission's description (empty when it is)."""
    if not isinstance(description, str):
        return ["must be a string"]
    if len(description) > MAX_DESCRIPTION_LENGTH:
        return [f"must be at most {MAX_DESCRIPTION_LENGTH} characters"]
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in description):
        return ["must not contain control characters"]
    return []


class PermissionRegistry:
    """The permissions an application knows, with descriptions.

    Starts with :data:`~usercore.domain.permissions.BUILTIN_PERMISSIONS`
    (pass ``builtins=False`` for an empty one).  With a ``loader`` (what
    :class:`~usercore.UserCore` passes: the permissions registered in its
    store) the registry is the store's view: :meth:`reload` reads it, and
    :meth:`validate_grants` reads it once more before refusing a grant it
    does not know, so a permission registered by another process is never
    refused.  Thread-safe: changes take a lock; lookups read an immutable
    snapshot.
    """

    def __init__(self, *, builtins: bool = True, loader: PermissionLoader | None = None) -> None:
        self._lock = threading.Lock()
        self._permissions: dict[str, Permission] = {}
        self._resources: frozenset[str] = frozenset()
        self._loader = loader
        for permission in BUILTIN_PERMISSIONS if builtins else ():
            self.register(permission.name, permission.description)
        self._builtins = frozenset(self._permissions)

    @staticmethod
    def check(name: str, description: str = "") -> None:
        """Raise :class:`ValidationError` unless ``name`` may be registered with ``description``.

        ``{"name": [...]}`` when ``name`` is not a concrete ``resource:action``
        (wildcards and ``:own`` are grant forms, not permissions of their own);
        ``{"description": [...]}`` for a description over 500 characters or
        with control characters.  (A new name beyond
        :data:`MAX_REGISTERED_PERMISSIONS` is refused where it would be added.)
        """
        problems = permission_problems(name)
        if not problems and (name == WILDCARD or name.split(":")[1] == WILDCARD):
            problems = ["register a concrete resource:action, not a wildcard"]
        elif not problems and name.count(":") == 2:
            problems = ["register resource:action without ':own'; ':own' is a grant scope"]
        if problems:
            raise ValidationError({"name": problems})
        problems = description_problems(description)
        if problems:
            raise ValidationError({"description": problems})

    def register(self, name: str, description: str = "") -> Permission:
        """Register ``resource:action`` in this registry and return it; registering
        it again is harmless.

        A second registration keeps the first description unless that one was
        empty.  Raises :class:`ValidationError` as :meth:`check` does.  This
        registers in memory only: on a :class:`~usercore.UserCore` use
        ``core.permissions.register``, which stores it for every process.
        """
        return self.add(name, description)[0]

    def add(self, name: str, description: str = "") -> tuple[Permission, bool]:
        """:meth:`register`, and whether ``name`` was new (decided under the lock,
        so of two racing registrations exactly one adds it)."""
        self.check(name, description)
        with self._lock:
            existing = self._permissions.get(name)
            if existing is not None and (existing.description or not description):
                return existing, False
            if existing is None and len(self._permissions) >= MAX_REGISTERED_PERMISSIONS:
                raise ValidationError({"name": [registry_full()]})
            self._publish([Permission(name=name, description=description)])
            return self._permissions[name], existing is None

    def builtin(self, name: str) -> Permission | None:
        """The built-in permission called ``name``, or ``None``."""
        return self._permissions.get(name) if name in self._builtins else None

    def learn(self, permissions: Iterable[Permission]) -> None:
        """Know ``permissions``, as the store holds them (built-in names keep
        their built-in definition)."""
        with self._lock:
            self._publish(
                [permission for permission in permissions if permission.name not in self._builtins]
            )

    def reload(self) -> None:
        """Read the permissions registered in the store (the ``loader``) and know
        them from now on; nothing without a loader.  A store fault propagates."""
        if self._loader is not None:
            self.learn(self._loader())

    def _publish(self, permissions: builtins.list[Permission]) -> None:
        # Call with the lock held.  Publish whole new objects so readers never
        # see a half-made update.
        if not permissions:
            return
        table = dict(self._permissions)
        table.update((permission.name, permission) for permission in permissions)
        self._permissions = table
        self._resources = self._resources | {p.name.split(":")[0] for p in permissions}

    def list(self) -> list[Permission]:
        """Every registered permission, ordered by name."""
        permissions = self._permissions
        return [permissions[name] for name in sorted(permissions)]

    def get(self, name: str) -> Permission | None:
        """The registered permission called ``name``, or ``None``."""
        return self._permissions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._permissions

    def __len__(self) -> int:
        return len(self._permissions)

    @property
    def resources(self) -> frozenset[str]:
        """The resources that have at least one registered permission."""
        return self._resources

    def grant_problems(self, grant: object) -> builtins.list[str]:
        """Why ``grant`` may not appear in a role or API-key scope (empty when it may).

        A grant may be ``*``; ``resource:*`` or ``resource:*:own`` for a
        resource with a registered permission; or ``resource:action`` or
        ``resource:action:own`` whose ``resource:action`` is registered.
        """
        problems = permission_problems(grant)
        if problems or not isinstance(grant, str):
            return [f"invalid permission {grant!r}: {problem}" for problem in problems]
        if grant == WILDCARD:
            return []
        resource, action, *_ = grant.split(":")
        if action == WILDCARD:
            known = resource in self._resources
        else:
            known = f"{resource}:{action}" in self._permissions
        return [] if known else [f"unknown permission {grant!r}"]

    def validate_grants(
        self, grants: Iterable[str], *, field: str = "permissions"
    ) -> frozenset[str]:
        """Check every grant (see :meth:`grant_problems`) and return them as a frozenset.

        Raises :class:`ValidationError` ``{field: [...]}`` listing every bad
        grant, e.g. ``{"permissions": ["unknown permission 'reprots:read'"]}``,
        so a typo in a role never turns into a silent denial.  Use
        ``field="scopes"`` for API-key scopes.
        """
        if isinstance(grants, str):
            raise ValidationError.single(field, "must be a list of permissions, not a string")
        checked = builtins.list(grants)
        problems = [problem for grant in checked for problem in self.grant_problems(grant)]
        if problems and self._loader is not None and any(map(self._is_unknown, checked)):
            # Another process may have registered it since: read the store once more.
            self.reload()
            problems = [problem for grant in checked for problem in self.grant_problems(grant)]
        if problems:
            raise ValidationError({field: builtins.list(dict.fromkeys(problems))})
        return frozenset(checked)

    def _is_unknown(self, grant: object) -> bool:
        """A well-formed grant that names no known permission or resource."""
        return not permission_problems(grant) and bool(self.grant_problems(grant))
