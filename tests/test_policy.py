"""The compiled RBAC policy: inheritance, wildcards, ``:own``, API-key scopes, freshness."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usercore import SYSTEM, Decision, PermissionDenied, Principal, Role, ValidationError
from usercore.domain.permissions import check_probes
from usercore.policy import (
    ADMIN_ROLE,
    BUILTIN_PERMISSIONS,
    BUILTIN_ROLES,
    USER_ROLE,
    CompiledPolicy,
    PermissionRegistry,
    Policy,
    compile_roles,
    find_cycle,
)

ALICE = 1  # a plain user
BOB = 2  # another plain user
ROOT = 3  # an admin


def principal(
    *roles: str, user_id: int | None = ALICE, scopes: Iterable[str] | None = None
) -> Principal:
    return Principal(
        user_id=user_id,
        roles=frozenset(roles),
        scopes=None if scopes is None else frozenset(scopes),
        method="token" if scopes is None else "api_key",
    )


def chain_of(depth: int, grant: str = "reports:read") -> list[Role]:
    """``r0`` inherits ``r1`` ... inherits ``r{depth-1}``, which alone holds ``grant``."""
    return [
        Role(
            name=f"r{i}",
            inherits=frozenset({f"r{i + 1}"}) if i + 1 < depth else frozenset(),
            permissions=frozenset({grant}) if i + 1 == depth else frozenset(),
        )
        for i in range(depth)
    ]


EDITORIAL = [
    USER_ROLE,
    ADMIN_ROLE,
    Role(name="viewer", permissions=frozenset({"reports:read", "posts:read"})),
    Role(name="editor", permissions=frozenset({"posts:*"}), inherits=frozenset({"viewer"})),
    Role(name="chief", permissions=frozenset({"reports:*"}), inherits=frozenset({"editor"})),
]


class FakeRoleStore:
    """Stands in for a database shared by several processes: roles plus a version counter."""

    def __init__(self, roles: Iterable[Role]) -> None:
        self.roles = {role.name: role for role in roles}
        self.version = 1
        self.loads = 0
        self.probes = 0
        self.fail = False

    def write(self, role: Role) -> None:
        self.roles[role.name] = role
        self.version += 1

    def load(self) -> tuple[int, Sequence[Role]]:
        if self.fail:
            raise ConnectionError("database is down")
        self.loads += 1
        return self.version, list(self.roles.values())

    def probe(self) -> int:
        if self.fail:
            raise ConnectionError("database is down")
        self.probes += 1
        return self.version


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy_over(store: FakeRoleStore, clock: FakeMonotonic, seconds: float = 1.0) -> Policy:
    return Policy(
        store.load,
        version_probe=store.probe,
        refresh_interval=timedelta(seconds=seconds),
        monotonic=clock,
    )


# --- the grammar of checks ------------------------------------------------------------


def test_check_probes_list_the_grants_that_satisfy_a_check() -> None:
    probes = check_probes("users:update")
    assert probes is not None
    assert frozenset({"*", "users:*", "users:update"}) == probes.anyone
    assert frozenset({"users:update:own", "users:*:own"}) == probes.own


def test_an_own_check_is_satisfied_by_own_and_unscoped_grants_alike() -> None:
    probes = check_probes("users:update:own")
    assert probes is not None
    expected = {"*", "users:*", "users:update", "users:update:own", "users:*:own"}
    assert frozenset(expected) == probes.anyone
    assert frozenset() == probes.own


@pytest.mark.parametrize("bad", ["", "users", "Users:read", "users:read:mine", "a:b:c:d", "*:read"])
def test_malformed_checks_have_no_probes(bad: str) -> None:
    assert check_probes(bad) is None


# --- compiling: inheritance and cycles ------------------------------------------------


def test_inheritance_at_depth_50_grants_the_bottom_permission_to_the_top_role() -> None:
    policy = Policy.from_roles(chain_of(50))
    assert policy.is_allowed(principal("r0"), "reports:read")
    assert policy.is_allowed(principal("r49"), "reports:read")
    assert not policy.is_allowed(principal("r0"), "reports:write")


def test_very_deep_inheritance_compiles_without_recursion() -> None:
    compiled = compile_roles(chain_of(3000))
    assert compiled.is_allowed(principal("r0"), "reports:read")
    assert find_cycle(chain_of(3000)) is None


def test_a_cycle_is_rejected_naming_the_cycle() -> None:
    roles = [
        Role(name="a", inherits=frozenset({"b"})),
        Role(name="b", inherits=frozenset({"c"})),
        Role(name="c", inherits=frozenset({"a"})),
        Role(name="d", inherits=frozenset({"a"})),
    ]
    with pytest.raises(ValidationError) as raised:
        compile_roles(roles)
    assert {"inherits": ["cycle: a → b → c → a"]} == raised.value.errors
    assert ["a", "b", "c", "a"] == find_cycle(roles)


def test_a_role_inheriting_itself_is_a_cycle() -> None:
    with pytest.raises(ValidationError) as raised:
        compile_roles([Role(name="loop", inherits=frozenset({"loop"}))])
    assert {"inherits": ["cycle: loop → loop"]} == raised.value.errors


def test_inheriting_an_undefined_role_is_rejected() -> None:
    with pytest.raises(ValidationError) as raised:
        compile_roles([Role(name="a", inherits=frozenset({"ghost"}))])
    assert {"inherits": ["role 'a' inherits unknown role 'ghost'"]} == raised.value.errors


def test_malformed_grants_and_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValidationError) as raised:
        compile_roles(
            [Role(name="a"), Role(name="a", permissions=frozenset({"Users:Read"}))],
        )
    assert ["duplicate role 'a'"] == raised.value.errors["name"]
    assert raised.value.errors["permissions"][0].startswith("role 'a': invalid permission")


def test_lenient_compiling_of_what_a_store_holds_never_fails() -> None:
    """A dangling inherit grants nothing; a cycle makes its roles share grants."""
    compiled = compile_roles(
        [
            Role(name="a", permissions=frozenset({"x:read"}), inherits=frozenset({"b", "gone"})),
            Role(name="b", permissions=frozenset({"y:read"}), inherits=frozenset({"a"})),
        ],
        strict=False,
    )
    assert frozenset({"x:read", "y:read"}) == compiled.effective_permissions(["a"])
    assert frozenset({"x:read", "y:read"}) == compiled.effective_permissions(["b"])


# --- checks ---------------------------------------------------------------------------


def test_wildcards_grant_everything_or_every_action_on_a_resource() -> None:
    policy = Policy.from_roles(EDITORIAL)
    editor = principal("editor")
    assert policy.is_allowed(editor, "posts:delete")
    assert policy.is_allowed(editor, "posts:*")
    assert not policy.is_allowed(editor, "reports:write")
    assert policy.is_allowed(principal("admin"), "anything.at-all:whatsoever")
    assert policy.is_allowed(principal("admin"), "*")
    assert not policy.is_allowed(principal("chief"), "*")


def test_an_own_grant_needs_the_owner_to_be_the_principal() -> None:
    policy = Policy.from_roles(BUILTIN_ROLES)
    alice = principal("user")
    assert policy.is_allowed(alice, "users:update", owner_id=ALICE)
    assert not policy.is_allowed(alice, "users:update", owner_id=BOB)
    assert not policy.is_allowed(alice, "users:update")
    assert policy.is_allowed(alice, "users:update:own")
    assert policy.is_allowed(alice, "apikeys:revoke", owner_id=ALICE)
    assert not policy.is_allowed(alice, "apikeys:revoke", owner_id=BOB)


def test_an_own_grant_never_applies_to_a_principal_without_a_user_id() -> None:
    policy = Policy.from_roles(BUILTIN_ROLES)
    assert not policy.is_allowed(principal("user", user_id=None), "users:read", owner_id=ALICE)


def test_deny_by_default() -> None:
    policy = Policy.from_roles(EDITORIAL)
    assert not policy.is_allowed(principal(), "posts:read")
    assert not policy.is_allowed(principal("viewer"), "reprots:read")
    assert not policy.is_allowed(principal("ghost"), "posts:read")
    assert not policy.is_allowed(principal("viewer"), "not a permission")
    assert policy.is_allowed(principal("viewer", "ghost"), "posts:read")


def test_system_passes_every_check() -> None:
    policy = Policy.from_roles([])
    assert policy.is_allowed(SYSTEM, "users:delete", owner_id=BOB)
    assert policy.is_allowed(SYSTEM, "*")
    policy.require(SYSTEM, "roles:delete")
    assert policy.explain(SYSTEM, "users:create").allowed


def test_require_raises_permission_denied_naming_the_permission() -> None:
    policy = Policy.from_roles(BUILTIN_ROLES)
    policy.require(principal("user"), "users:read", owner_id=ALICE)
    with pytest.raises(PermissionDenied) as raised:
        policy.require(principal("user"), "users:read", owner_id=BOB)
    assert "users:read" == raised.value.permission
    assert {"permission": "users:read"} == raised.value.details


class TestAdminsVersusUsers:
    """DESIGN §5: only admins create, update or delete other users; users manage themselves."""

    policy = Policy.from_roles(BUILTIN_ROLES)

    @pytest.mark.parametrize("action", ["create", "read", "update", "delete"])
    def test_admins_may_act_on_other_users(self, action: str) -> None:
        admin = principal("admin", user_id=ROOT)
        assert self.policy.is_allowed(admin, f"users:{action}", owner_id=BOB)
        assert self.policy.is_allowed(admin, f"users:{action}", owner_id=ROOT)

    @pytest.mark.parametrize("action", ["read", "update", "delete"])
    def test_a_user_may_act_on_itself_only(self, action: str) -> None:
        alice = principal("user")
        assert self.policy.is_allowed(alice, f"users:{action}", owner_id=ALICE)
        assert not self.policy.is_allowed(alice, f"users:{action}", owner_id=BOB)

    def test_a_user_may_not_create_users_nor_touch_roles(self) -> None:
        alice = principal("user")
        assert not self.policy.is_allowed(alice, "users:create")
        assert not self.policy.is_allowed(alice, "users:create", owner_id=ALICE)
        assert not self.policy.is_allowed(alice, "roles:assign", owner_id=ALICE)
        assert not self.policy.is_allowed(alice, "users:read")


class TestApiKeyScopes:
    """A key never does more than its scopes, nor more than its user."""

    policy = Policy.from_roles(EDITORIAL)

    def test_scopes_narrow_what_the_roles_allow(self) -> None:
        key = principal("admin", scopes={"posts:read"})
        assert self.policy.is_allowed(key, "posts:read")
        assert not self.policy.is_allowed(key, "posts:write")
        assert not self.policy.is_allowed(key, "users:delete", owner_id=BOB)

    def test_scopes_never_widen_the_roles(self) -> None:
        key = principal("viewer", scopes={"*"})
        assert self.policy.is_allowed(key, "posts:read")
        assert not self.policy.is_allowed(key, "posts:write")

    def test_scopes_match_with_wildcards_and_own(self) -> None:
        key = principal("admin", scopes={"users:*:own", "posts:*"})
        assert self.policy.is_allowed(key, "users:update", owner_id=ALICE)
        assert not self.policy.is_allowed(key, "users:update", owner_id=BOB)
        assert self.policy.is_allowed(key, "posts:publish")

    def test_no_scopes_means_nothing(self) -> None:
        assert not self.policy.is_allowed(principal("admin", scopes=()), "posts:read")

    def test_the_owner_rule_applies_to_both_roles_and_scopes(self) -> None:
        key = principal("user", scopes={"users:read"})
        assert self.policy.is_allowed(key, "users:read", owner_id=ALICE)
        assert not self.policy.is_allowed(key, "users:read", owner_id=BOB)


# --- explain --------------------------------------------------------------------------


def test_explain_gives_the_shortest_chain_to_the_grant() -> None:
    roles = [
        Role(name="user", inherits=frozenset({"editor", "long"})),
        Role(name="long", inherits=frozenset({"longer"})),
        Role(name="longer", inherits=frozenset({"viewer"})),
        Role(name="editor", inherits=frozenset({"viewer"})),
        Role(name="viewer", permissions=frozenset({"reports:read"})),
    ]
    decision = Policy.from_roles(roles).explain(principal("user"), "reports:read")
    assert (
        Decision(
            allowed=True,
            permission="reports:read",
            grant="reports:read",
            chain=("user", "editor", "viewer", "reports:read"),
            rule="allowed: role 'viewer' grants 'reports:read', "
            "inherited along user → editor → viewer",
        )
        == decision
    )


def test_explain_at_depth_50_walks_the_whole_chain() -> None:
    decision = Policy.from_roles(chain_of(50)).explain(principal("r0"), "reports:read")
    assert (*(f"r{i}" for i in range(50)), "reports:read") == decision.chain


def test_explain_prefers_the_most_specific_grant() -> None:
    policy = Policy.from_roles([Role(name="x", permissions=frozenset({"*", "a:*", "a:b"}))])
    assert "a:b" == policy.explain(principal("x"), "a:b").grant


def test_explain_says_why_an_own_grant_did_not_apply() -> None:
    decision = Policy.from_roles(BUILTIN_ROLES).explain(
        principal("user"), "users:delete", owner_id=BOB
    )
    assert not decision
    assert decision.grant is None
    assert "'users:delete:own'" in decision.rule
    assert "not the principal's" in decision.rule


@pytest.mark.parametrize(
    ("who", "permission", "phrase"),
    [
        (principal(), "posts:read", "holds no roles"),
        (principal("ghost"), "posts:read", "unknown roles grant nothing: ghost"),
        (principal("viewer"), "posts:write", "no role of the principal grants 'posts:write'"),
        (principal("viewer"), "Posts", "not a valid permission"),
        (principal("admin", scopes={"posts:read"}), "posts:write", "API key's scopes do not"),
    ],
)
def test_explain_says_why_a_check_is_denied(who: Principal, permission: str, phrase: str) -> None:
    decision = Policy.from_roles(EDITORIAL).explain(who, permission)
    assert not decision.allowed
    assert phrase in decision.rule


def test_explain_names_the_scope_that_let_an_api_key_through() -> None:
    key = principal("editor", scopes={"posts:*"})
    decision = Policy.from_roles(EDITORIAL).explain(key, "posts:write")
    assert ("editor", "posts:*") == decision.chain
    assert "scope 'posts:*'" in decision.rule


# --- bounded state ---------------------------------------------------------------------


def test_checks_for_unknown_role_names_never_grow_the_cache() -> None:
    policy = Policy.from_roles(EDITORIAL)
    before = policy.compiled.cached_role_sets
    for i in range(5000):
        assert not policy.is_allowed(principal(f"ghost{i}"), "posts:read")
        policy.is_allowed(principal("viewer", f"ghost{i}"), "posts:read")
        policy.explain(principal(f"ghost{i}", "editor"), "posts:read")
    assert before + 2 >= policy.compiled.cached_role_sets


def test_the_role_set_cache_is_capped() -> None:
    roles = [Role(name=f"r{i}", permissions=frozenset({f"res{i}:read"})) for i in range(40)]
    compiled = compile_roles(roles, cache_size=16)
    fixed = compiled.cached_role_sets  # the empty set and each single role
    for i in range(40):
        for j in range(40):
            assert compiled.is_allowed(principal(f"r{i}", f"r{j}"), f"res{j}:read")
    assert fixed + 16 >= compiled.cached_role_sets


# --- freshness: this process at once, other processes within the interval --------------


def test_the_first_check_loads_and_later_ones_touch_no_store() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock)
    for _ in range(1000):
        assert policy.is_allowed(principal("viewer"), "posts:read")
    assert (1, 0) == (store.loads, store.probes)


def test_a_change_is_effective_on_the_next_check_after_invalidate() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock)
    assert not policy.is_allowed(principal("viewer"), "posts:write")
    store.write(Role(name="viewer", permissions=frozenset({"posts:write"})))
    policy.invalidate()
    assert policy.is_allowed(principal("viewer"), "posts:write")
    assert 0 == store.probes


def test_another_process_change_is_seen_within_the_refresh_interval() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock, seconds=1.0)
    viewer = principal("viewer")
    assert not policy.is_allowed(viewer, "posts:write")

    store.write(Role(name="viewer", permissions=frozenset({"posts:write"})))  # elsewhere
    clock.now += 0.999
    for _ in range(100):
        assert not policy.is_allowed(viewer, "posts:write")
    assert 0 == store.probes, "no probe before the interval has passed"

    clock.now += 0.001
    assert policy.is_allowed(viewer, "posts:write")
    assert (1, 2) == (store.probes, store.loads)
    for _ in range(100):
        policy.is_allowed(viewer, "posts:write")
    assert 1 == store.probes, "one probe per interval, however many checks"


def test_refresh_due_tells_whether_a_check_would_read_the_store_first() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock, seconds=1.0)
    assert policy.refresh_due()  # never loaded
    policy.is_allowed(principal("viewer"), "posts:read")
    assert not policy.refresh_due()
    clock.now += 0.9
    assert not policy.refresh_due(within=0.05)
    assert policy.refresh_due(within=0.1)  # the probe falls due within 0.1 s
    assert (1, 0) == (store.loads, store.probes), "asking reads nothing"
    clock.now += 0.1
    assert policy.refresh_due()
    policy.is_allowed(principal("viewer"), "posts:read")
    assert not policy.refresh_due()
    policy.invalidate()
    assert policy.refresh_due()


def test_an_unchanged_version_is_not_reloaded() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock)
    for _ in range(5):
        policy.is_allowed(principal("viewer"), "posts:read")
        clock.now += 1.5
    assert (1, 4) == (store.loads, store.probes)


def test_a_failing_store_fails_the_check_and_is_retried() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock)
    policy.is_allowed(principal("viewer"), "posts:read")
    store.fail = True
    clock.now += 2
    with pytest.raises(ConnectionError):
        policy.is_allowed(principal("viewer"), "posts:read")
    store.fail = False
    store.write(Role(name="viewer"))
    assert not policy.is_allowed(principal("viewer"), "posts:read")


def test_a_store_holding_a_cycle_still_compiles() -> None:
    store = FakeRoleStore(
        [
            Role(name="a", permissions=frozenset({"x:read"}), inherits=frozenset({"b"})),
            Role(name="b", inherits=frozenset({"a"})),
        ]
    )
    policy = policy_over(store, FakeMonotonic())
    assert policy.is_allowed(principal("b"), "x:read")


def test_concurrent_checks_and_invalidations_see_the_old_or_the_new_policy() -> None:
    store, clock = FakeRoleStore(EDITORIAL), FakeMonotonic()
    policy = policy_over(store, clock)
    viewer, errors = principal("viewer"), []

    def check() -> None:
        try:
            for _ in range(2000):
                assert policy.is_allowed(viewer, "reports:read")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        extra = frozenset({f"posts:v{i}"})
        store.write(Role(name="viewer", permissions=frozenset({"reports:read"}) | extra))
        policy.invalidate()
    for thread in threads:
        thread.join()
    assert [] == errors
    assert policy.is_allowed(viewer, "posts:v49")


def test_a_policy_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="refresh_interval"):
        Policy(lambda: (0, []), version_probe=lambda: 0, refresh_interval=timedelta(0))


# --- the registry ---------------------------------------------------------------------


def test_the_registry_starts_with_the_built_in_permissions() -> None:
    registry = PermissionRegistry()
    assert [p.name for p in sorted(BUILTIN_PERMISSIONS, key=lambda p: p.name)] == [
        p.name for p in registry.list()
    ]
    assert all(p.description for p in registry.list())
    assert "roles:assign" in registry
    assert 0 == len(PermissionRegistry(builtins=False))


def test_apps_register_their_own_permissions() -> None:
    registry = PermissionRegistry()
    registered = registry.register("reports:read", "Read reports")
    assert registered == registry.get("reports:read")
    assert "Read reports" == registry.register("reports:read").description
    assert "reports" in registry.resources
    assert registry.list() == sorted(registry.list(), key=lambda p: p.name)


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("*", "wildcard"),
        ("reports:*", "wildcard"),
        ("reports:read:own", "':own'"),
        ("Reports:read", "lowercase"),
        ("reports", "resource:action"),
    ],
)
def test_only_concrete_permissions_can_be_registered(name: str, phrase: str) -> None:
    with pytest.raises(ValidationError) as raised:
        PermissionRegistry().register(name)
    assert phrase in raised.value.errors["name"][0]


def test_unknown_grants_are_a_validation_error() -> None:
    registry = PermissionRegistry()
    registry.register("reports:read")
    with pytest.raises(ValidationError) as raised:
        registry.validate_grants(["reports:read", "reprots:read"])
    assert {"permissions": ["unknown permission 'reprots:read'"]} == raised.value.errors


@pytest.mark.parametrize(
    "grant", ["*", "users:*", "users:*:own", "users:update", "users:update:own", "apikeys:*:own"]
)
def test_registered_permissions_and_wildcards_over_known_resources_are_valid(grant: str) -> None:
    assert frozenset({grant}) == PermissionRegistry().validate_grants([grant])


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        ("reports:*", "unknown permission 'reports:*'"),
        ("users:fly", "unknown permission 'users:fly'"),
        ("users:fly:own", "unknown permission 'users:fly:own'"),
        ("USERS:read", "invalid permission 'USERS:read': resource must be"),
        ("users:read:all", "invalid permission 'users:read:all': the only scope is ':own'"),
    ],
)
def test_each_bad_grant_gets_its_own_message(grant: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        PermissionRegistry().validate_grants([grant], field="scopes")
    assert raised.value.errors["scopes"][0].startswith(message)


def test_a_single_string_is_not_a_list_of_grants() -> None:
    with pytest.raises(ValidationError):
        PermissionRegistry().validate_grants("users:read")


def test_the_built_in_roles_grant_only_registered_permissions() -> None:
    registry = PermissionRegistry()
    for role in BUILTIN_ROLES:
        registry.validate_grants(role.permissions)
    assert frozenset({"*"}) == ADMIN_ROLE.permissions
    expected = {"users:read:own", "users:update:own", "users:delete:own", "apikeys:*:own"}
    assert frozenset(expected) == USER_ROLE.permissions


# --- properties: the compiled table agrees with a brute-force graph search ---------------

GRANTS = [
    "*",
    "users:*",
    "users:read",
    "users:update",
    "users:read:own",
    "users:*:own",
    "posts:read",
    "posts:*",
    "posts:write:own",
]
CHECKS = [
    "users:read",
    "users:update",
    "users:delete",
    "users:read:own",
    "users:*",
    "posts:read",
    "posts:write",
    "posts:write:own",
    "posts:*",
    "*",
    "bogus",
]


def grant_matches(grant: str, check: str, own_ok: bool) -> bool:
    """The meaning of a grant, written out plainly rather than as probes."""
    if grant == "*":
        return True
    if check == "*":
        return False
    g_resource, g_action, *g_scope = grant.split(":")
    c_resource, c_action, *c_scope = check.split(":")
    if g_resource != c_resource or g_action not in ("*", c_action):
        return False
    return not g_scope or bool(c_scope) or own_ok


def brute_force(
    roles: Sequence[Role], who: Principal, check: str, owner_id: int | None
) -> tuple[bool, int | None]:
    """(allowed, length of the shortest role path to a matching grant) by search."""
    if check_probes(check) is None:
        return False, None
    own_ok = owner_id is not None and owner_id == who.user_id
    by_name = {role.name: role for role in roles}
    starts = [name for name in who.roles if name in by_name]
    distance = dict.fromkeys(starts, 1)
    queue = deque(starts)
    nearest = None
    while queue:
        name = queue.popleft()
        if nearest is None and any(
            grant_matches(g, check, own_ok) for g in by_name[name].permissions
        ):
            nearest = distance[name]
        for parent in by_name[name].inherits:
            if parent in by_name and parent not in distance:
                distance[parent] = distance[name] + 1
                queue.append(parent)
    allowed = nearest is not None
    if who.scopes is not None:
        allowed = allowed and any(grant_matches(s, check, own_ok) for s in who.scopes)
    return allowed, nearest


@st.composite
def role_graphs(draw: st.DrawFn, *, cycle: bool = False) -> list[Role]:
    size = draw(st.integers(min_value=2 if cycle else 1, max_value=15))
    names = draw(st.permutations([f"r{i}" for i in range(size)]))  # a random topological order
    edges: dict[str, set[str]] = {}
    for i, name in enumerate(names):
        later = names[i + 1 :]
        edges[name] = draw(st.sets(st.sampled_from(later), max_size=3)) if later else set()
    if cycle:
        loop = draw(st.lists(st.sampled_from(names), min_size=1, max_size=size, unique=True))
        for here, there in zip(loop, [*loop[1:], loop[0]], strict=True):
            edges[here].add(there)
    return [
        Role(
            name=name,
            permissions=frozenset(draw(st.sets(st.sampled_from(GRANTS), max_size=3))),
            inherits=frozenset(edges[name]),
        )
        for name in names
    ]


def principals(roles: Sequence[Role]) -> st.SearchStrategy[Principal]:
    names = [role.name for role in roles] + ["ghost"]
    return st.builds(
        Principal,
        user_id=st.sampled_from([ALICE, None]),
        roles=st.frozensets(st.sampled_from(names), max_size=3),
        scopes=st.none() | st.frozensets(st.sampled_from(GRANTS), max_size=3),
    )


def checks(
    roles: Sequence[Role], count: int
) -> st.SearchStrategy[list[tuple[Principal, str, int | None]]]:
    one = st.tuples(principals(roles), st.sampled_from(CHECKS), st.sampled_from([None, ALICE, BOB]))
    return st.lists(one, min_size=1, max_size=count)


@settings(max_examples=300, deadline=None)
@given(role_graphs(), st.data())
def test_checks_agree_with_a_brute_force_search(roles: list[Role], data: st.DataObject) -> None:
    compiled = compile_roles(roles, cache_size=4)
    policy = Policy.from_roles(roles, cache_size=4)
    for who, check, owner_id in data.draw(checks(roles, 20)):
        expected, nearest = brute_force(roles, who, check, owner_id)
        assert expected == policy.is_allowed(who, check, owner_id=owner_id)
        assert expected == compiled.is_allowed(who, check, owner_id=owner_id)
        decision = policy.explain(who, check, owner_id=owner_id)
        assert expected == decision.allowed
        if decision.allowed:
            assert_is_a_real_chain(roles, who, decision, check, owner_id)
            assert nearest is not None
            assert nearest + 1 == len(decision.chain), "the chain is a shortest one"


def assert_is_a_real_chain(
    roles: Sequence[Role], who: Principal, decision: Decision, check: str, owner_id: int | None
) -> None:
    by_name = {role.name: role for role in roles}
    *path, grant = decision.chain
    assert grant == decision.grant
    assert path[0] in who.roles
    for here, there in itertools.pairwise(path):
        assert there in by_name[here].inherits
    assert grant in by_name[path[-1]].permissions
    own_ok = owner_id is not None and owner_id == who.user_id
    assert grant_matches(grant, check, own_ok)


@settings(max_examples=200, deadline=None)
@given(role_graphs(cycle=True))
def test_graphs_with_a_cycle_are_always_rejected(roles: list[Role]) -> None:
    with pytest.raises(ValidationError) as raised:
        compile_roles(roles)
    [message] = [m for m in raised.value.errors["inherits"] if m.startswith("cycle: ")]
    cycle = message.removeprefix("cycle: ").split(" → ")
    assert cycle == find_cycle(roles)
    assert cycle[0] == cycle[-1]
    by_name = {role.name: role for role in roles}
    for here, there in itertools.pairwise(cycle):
        assert there in by_name[here].inherits


@settings(max_examples=100, deadline=None)
@given(role_graphs(cycle=True), st.data())
def test_a_store_with_cycles_is_still_checked_like_the_graph_search(
    roles: list[Role], data: st.DataObject
) -> None:
    compiled = compile_roles(roles, strict=False)
    for who, check, owner_id in data.draw(checks(roles, 10)):
        expected, _ = brute_force(roles, who, check, owner_id)
        assert expected == compiled.is_allowed(who, check, owner_id=owner_id)
        assert expected == compiled.explain(who, check, owner_id=owner_id).allowed


def test_a_compiled_policy_can_be_built_directly() -> None:
    compiled = CompiledPolicy(
        roles={"r": Role(name="r")}, effective={"r": frozenset({"a:b"})}, version=7
    )
    assert 7 == compiled.version
    assert compiled.is_allowed(principal("r"), "a:b")
