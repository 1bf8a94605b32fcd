"""usercore's compiled policy against pycasbin's RBAC enforcer, measured in one run.

The same policy in both: 20 roles of 5 permissions each, in 4 inheritance
chains of 5 roles, and 1,000 users, each holding the role at the bottom of a
chain (which inherits the 4 above it; depth 5 from a user, within casbin's
silent limit of 10).  The checks:

* allowed: a permission of the top of the chain, the farthest grant;
* denied: a permission of another chain, which neither grants.

Subjects are measured in alternation, several rounds, and the median kept, so a
noisy machine slows them all alike.  Targets: usercore at least 30x faster
than ``casbin.Enforcer.enforce`` on the allowed check, 100x on the denied one,
and within 25x of a bare ``frozenset`` membership test.

Run: ``python benchmarks/bench_policy.py`` (needs ``pip install 'usercore[bench]'``).
"""

from __future__ import annotations

import statistics
import sys
import timeit
from datetime import timedelta

try:
    import casbin  # type: ignore[import-untyped]
    from casbin.persist.adapters.string_adapter import StringAdapter  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise SystemExit("bench_policy needs pycasbin: pip install 'usercore[bench]'") from exc

from usercore import Principal, Role
from usercore.policy import Policy

ROLES = 20
PERMISSIONS_PER_ROLE = 5
CHAIN_LENGTH = 5
USERS = 1_000
ROUNDS = 9
TARGET_SECONDS = 0.05  # per subject per round

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""


def role_name(index: int) -> str:
    return f"role{index}"


def parent_of(index: int) -> int | None:
    """The role ``index`` inherits: the next one up its chain, if any."""
    return None if index % CHAIN_LENGTH == CHAIN_LENGTH - 1 else index + 1


def bottom_role(user: int) -> int:
    """The role a user holds: the bottom of one of the chains."""
    return (user % (ROLES // CHAIN_LENGTH)) * CHAIN_LENGTH


def grants(index: int) -> list[tuple[str, str]]:
    return [(f"res{index}", f"act{action}") for action in range(PERMISSIONS_PER_ROLE)]


def build_casbin() -> casbin.Enforcer:
    lines = [
        f"p, {role_name(index)}, {resource}, {action}"
        for index in range(ROLES)
        for resource, action in grants(index)
    ]
    for index in range(ROLES):
        parent = parent_of(index)
        if parent is not None:
            lines.append(f"g, {role_name(index)}, {role_name(parent)}")
    lines += [f"g, user{user}, {role_name(bottom_role(user))}" for user in range(USERS)]
    model = casbin.model.Model()
    model.load_model_from_text(CASBIN_MODEL)
    return casbin.Enforcer(model, StringAdapter("\n".join(lines)))


def build_usercore() -> Policy:
    roles = [
        Role(
            name=role_name(index),
            permissions=frozenset(f"{resource}:{action}" for resource, action in grants(index)),
            inherits=frozenset() if parent_of(index) is None else {role_name(index + 1)},
        )
        for index in range(ROLES)
    ]
    # As the facade builds it: a loader and a version probe on a store (here, memory),
    # probed at most once a second, so the timings include the freshness check.
    return Policy(
        lambda: (1, roles), version_probe=lambda: 1, refresh_interval=timedelta(seconds=1)
    )


def measure(timer: timeit.Timer) -> float:
    """Nanoseconds per run of ``timer``'s statement, over about ``TARGET_SECONDS``."""
    number, _ = timer.autorange()
    number = max(1, int(number * TARGET_SECONDS / 0.2))
    return timer.timeit(number) / number * 1e9


def main() -> int:
    enforcer = build_casbin()
    policy = build_usercore()
    user = 17
    top = bottom_role(user) + CHAIN_LENGTH - 1
    other_chain_role = (bottom_role(user) + CHAIN_LENGTH) % ROLES
    allowed_obj, allowed_act = grants(top)[2]
    denied_obj, denied_act = grants(other_chain_role)[1]
    allowed, denied = f"{allowed_obj}:{allowed_act}", f"{denied_obj}:{denied_act}"
    principal = Principal(user_id=user, roles=frozenset({role_name(bottom_role(user))}))
    effective = policy.effective_permissions(principal.roles)
    subject_name = f"user{user}"

    # Both engines must give the same answers before their speed means anything.
    assert enforcer.enforce(subject_name, allowed_obj, allowed_act) is True
    assert enforcer.enforce(subject_name, denied_obj, denied_act) is False
    assert policy.is_allowed(principal, allowed) is True
    assert policy.is_allowed(principal, denied) is False
    assert allowed in effective

    # Statements, not lambdas, so no subject pays for an extra call: the baseline
    # is the bare ``in`` test, as cheap as Python gets.
    names = {
        "enforcer": enforcer,
        "policy": policy,
        "principal": principal,
        "effective": effective,
        "subject_name": subject_name,
        "allowed": allowed,
        "denied": denied,
        "allowed_obj": allowed_obj,
        "allowed_act": allowed_act,
        "denied_obj": denied_obj,
        "denied_act": denied_act,
    }
    statements = {
        "casbin enforce, allowed": "enforcer.enforce(subject_name, allowed_obj, allowed_act)",
        "usercore is_allowed, allowed": "policy.is_allowed(principal, allowed)",
        "casbin enforce, denied": "enforcer.enforce(subject_name, denied_obj, denied_act)",
        "usercore is_allowed, denied": "policy.is_allowed(principal, denied)",
        "bare frozenset membership": "allowed in effective",
    }
    subjects = {name: timeit.Timer(stmt, globals=names) for name, stmt in statements.items()}
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(ROUNDS):
        for name, subject in subjects.items():
            samples[name].append(measure(subject))
    ns = {name: statistics.median(values) for name, values in samples.items()}

    print(
        f"policy: {ROLES} roles x {PERMISSIONS_PER_ROLE} permissions, chains of {CHAIN_LENGTH}, "
        f"{USERS} users; median of {ROUNDS} alternating rounds "
        f"(pycasbin {_casbin_version()}, Python {sys.version.split()[0]})"
    )
    print()
    print(f"{'subject':<32} {'ns/check':>12}")
    for name, value in ns.items():
        print(f"{name:<32} {value:>12,.0f}")
    print()
    targets = [
        (
            "allowed: casbin / usercore",
            ns["casbin enforce, allowed"] / ns["usercore is_allowed, allowed"],
            ">=",
            30.0,
        ),
        (
            "denied: casbin / usercore",
            ns["casbin enforce, denied"] / ns["usercore is_allowed, denied"],
            ">=",
            100.0,
        ),
        (
            "allowed: usercore / frozenset",
            ns["usercore is_allowed, allowed"] / ns["bare frozenset membership"],
            "<=",
            25.0,
        ),
        (
            "denied: usercore / frozenset",
            ns["usercore is_allowed, denied"] / ns["bare frozenset membership"],
            "<=",
            25.0,
        ),
    ]
    print(f"{'ratio':<32} {'value':>10} {'target':>10}  result")
    failed = False
    for label, value, op, bound in targets:
        ok = value >= bound if op == ">=" else value <= bound
        failed |= not ok
        print(f"{label:<32} {value:>9.1f}x {op + f' {bound:g}x':>10}  {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


def _casbin_version() -> str:
    from importlib.metadata import version

    return version("casbin")


if __name__ == "__main__":
    sys.exit(main())
