"""MemoryStore and SQLiteStore, driven by the same random operations, never disagree.

A hypothesis state machine runs each operation (or a batch of them: committed,
rolled back, or nested in a savepoint) against both stores, compares what each
returned or raised, and after every step compares everything readable.  The
value pools are small on purpose, so that unique keys collide, case folding
matters, ids get deleted and reused attempts happen often.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from usercore.domain import (
    ApiKey,
    OneTimeToken,
    RefreshToken,
    Role,
    User,
    UserStatus,
    email_key,
    username_key,
)
from usercore.errors import ConflictError, NotFoundError
from usercore.ports import LoginAttempts, Store, UnitOfWork, UserFilter
from usercore.storage import MemoryStore, SQLiteStore

T0 = datetime(2024, 5, 17, 12, 0, tzinfo=timezone.utc)
EVERYONE = UserFilter()

EMAIL_LOCALS = ["ada", "ADA", "grace", "straße", "STRASSE", "%", "_", "a\u0301b", "\u202ex"]
EMAILS = [f"{local}@{domain}" for local in EMAIL_LOCALS for domain in ("example.com", "X.io")]
USERNAMES = [None, None, None, "ada", "Ada", "ß", "ss", "%_", "\u05e9", "grace", "o'hara"]
NAMES = [None, "Ada Lovelace", "o'brien -- x", "100% _real_", "tab\tname", "x" * 300]
ROLES = ["admin", "user", "editor", "%"]
SEARCHES = ["a", "ADA", "%", "_", "ss", "\x00", "example", "o'b"]
HASHES = [b"h1", b"h2", b"h3", b"\x00"]
FAMILIES = ["f1", "f2"]
PREFIXES = ["p1", "P1", "p2", "%"]
JTIS = ["j1", "j2", "j'3"]
PURPOSES = ["password_reset", "email_verification"]
LOGIN_KEYS = ["ada@example.com", "unknown"]
META_KEYS = ["a", "b", "usercore.x"]
FILTERS = [
    UserFilter(role=role, status=status, search=search)
    for role in (None, "user", "%")
    for status in (None, UserStatus.ACTIVE)
    for search in (None, "a", "%", "SS")
]

zones = st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30))]
)
# Coarse instants, so that expiries often fall exactly on a purge time; the
# microseconds check precision, the zones the normalization to UTC.
moments = st.builds(
    lambda hours, micros, zone: (T0 + timedelta(hours=hours, microseconds=micros)).astimezone(zone),
    st.integers(-2, 2),
    st.sampled_from([0, 0, 0, 1]),
    zones,
)
# Mostly aware datetimes; now and then a naive one, which both stores must refuse.
maybe_naive = st.tuples(moments, st.sampled_from([False] * 5 + [True])).map(
    lambda drawn: drawn[0].replace(tzinfo=None) if drawn[1] else drawn[0]
)
# Which user, by position in id order; now and then one past the end (a missing user).
picks = st.sampled_from([0, 0, 1, 1, 2, 2, 20])
role_sets = st.frozensets(st.sampled_from(ROLES), max_size=3)
statuses = st.sampled_from(list(UserStatus))


class Rollback(Exception):
    """Raised to roll a transaction back on purpose."""


def outcome(action: Callable[[], Any]) -> Any:
    """What ``action`` returned, or which usercore error (and field) it raised."""
    try:
        return action()
    except ConflictError as exc:
        return ("ConflictError", exc.field)
    except NotFoundError:
        return ("NotFoundError",)
    except ValueError as exc:
        return ("ValueError", str(exc)[:20])


def pick_user(tx: UnitOfWork, pick: int) -> User | None:
    users = tx.users.list(after=None, limit=1, filter=EVERYONE, offset=pick)
    return users[0] if users else None


def pick_user_id(tx: UnitOfWork, pick: int) -> int:
    user = pick_user(tx, pick)
    return 10_000 + pick if user is None else user.id


@attrs.frozen
class Op:
    """One repository call; its repr is what hypothesis prints for a failing run."""

    name: str
    args: tuple[Any, ...]

    def __call__(self, tx: UnitOfWork) -> Any:
        return outcome(lambda: OPERATIONS[self.name](tx, *self.args))

    def __repr__(self) -> str:
        return f"{self.name}{self.args!r}"


def _add_user(
    tx: UnitOfWork,
    email: str,
    username: str | None,
    name: str | None,
    roles: frozenset[str],
    status: UserStatus,
    when: datetime,
) -> User:
    return tx.users.add(
        User(
            id=0,
            email=email,
            username=username,
            name=name,
            roles=roles,
            status=status,
            created_at=when,
            updated_at=when,
            last_login_at=when,
        )
    )


def _add_many(tx: UnitOfWork, records: list[tuple[str, str | None, frozenset[str]]]) -> Any:
    users = [
        User(id=0, email=email, username=username, roles=roles, created_at=T0, updated_at=T0)
        for email, username, roles in records
    ]
    return tx.users.add_many(users)


def _update_user(
    tx: UnitOfWork,
    pick: int,
    email: str,
    username: str | None,
    name: str | None,
    roles: frozenset[str],
    status: UserStatus,
    when: datetime,
    version_shift: int,
) -> User:
    user = pick_user(tx, pick) or User(
        id=10_000, email="ghost@example.com", created_at=T0, updated_at=T0, version=1
    )
    changed = attrs.evolve(
        user,
        email=email,
        username=username,
        name=name,
        roles=roles,
        status=status,
        updated_at=when,
        failed_logins=user.failed_logins + 1,
        locked_until=when,
        token_version=user.token_version + 1,
        password_hash=f"hash-{when.isoformat()}",
        email_verified=not user.email_verified,
        version=user.version + version_shift,
    )
    return tx.users.update(changed)


def _refresh_add(tx: UnitOfWork, token_hash: bytes, pick: int, family: str, when: datetime) -> None:
    tx.refresh_tokens.add(
        RefreshToken(
            token_hash=token_hash,
            family_id=family,
            user_id=pick_user_id(tx, pick),
            token_version=pick,
            created_at=T0,
            expires_at=when,
        )
    )


def _api_key_add(
    tx: UnitOfWork, prefix: str, pick: int, scopes: frozenset[str] | None, when: datetime
) -> ApiKey:
    return tx.api_keys.add(
        ApiKey(
            id=0,
            user_id=pick_user_id(tx, pick),
            name=f"key {prefix}",
            prefix=prefix,
            scopes=scopes,
            created_at=when,
            expires_at=when + timedelta(days=1),
            secret_hash=prefix.encode() * 8,
        )
    )


def _api_key_update(
    tx: UnitOfWork, prefix: str, name: str, scopes: frozenset[str] | None, when: datetime
) -> ApiKey:
    key = tx.api_keys.get_by_prefix(prefix)
    if key is None:
        key = ApiKey(id=10_000, user_id=1, name="ghost", prefix="ghost", created_at=T0)
    return tx.api_keys.update(
        attrs.evolve(key, name=name, scopes=scopes, last_used_at=when, revoked_at=when)
    )


def _one_time_add(
    tx: UnitOfWork, token_hash: bytes, pick: int, purpose: str, when: datetime
) -> None:
    tx.one_time_tokens.add(
        OneTimeToken(
            token_hash=token_hash,
            purpose=purpose,
            user_id=pick_user_id(tx, pick),
            binding=f"bound to {pick}",
            created_at=T0,
            expires_at=when,
        )
    )


OPERATIONS: dict[str, Callable[..., Any]] = {
    "add_user": _add_user,
    "add_many": _add_many,
    "update_user": _update_user,
    "delete_user": lambda tx, pick: tx.users.delete(pick_user_id(tx, pick)),
    "remove_role": lambda tx, role: tx.users.remove_role(role),
    "list_users": lambda tx, pick, limit, query, offset: tx.users.list(
        after=pick_user_id(tx, pick) if pick % 3 else None, limit=limit, filter=query, offset=offset
    ),
    "add_role": lambda tx, name, permissions, inherits: tx.roles.add(
        Role(name=name, permissions=permissions, inherits=inherits, description=name * 2)
    ),
    "update_role": lambda tx, name, permissions: tx.roles.update(
        Role(name=name, permissions=permissions)
    ),
    "delete_role": lambda tx, name: tx.roles.delete(name),
    "add_refresh_token": _refresh_add,
    "mark_used": lambda tx, token_hash, when: tx.refresh_tokens.mark_used(token_hash, when),
    "revoke_family": lambda tx, family, when: tx.refresh_tokens.revoke_family(family, when),
    "revoke_user_tokens": lambda tx, pick, when: tx.refresh_tokens.revoke_user(
        pick_user_id(tx, pick), when
    ),
    "purge_refresh_tokens": lambda tx, when: tx.refresh_tokens.purge_expired(when),
    "revoke_jti": lambda tx, jti, when: tx.revoked_tokens.add(jti, when),
    "purge_revoked": lambda tx, when: tx.revoked_tokens.purge_expired(when),
    "add_api_key": _api_key_add,
    "update_api_key": _api_key_update,
    "revoke_user_keys": lambda tx, pick, when: tx.api_keys.revoke_user(
        pick_user_id(tx, pick), when
    ),
    "add_one_time_token": _one_time_add,
    "consume": lambda tx, token_hash, when: tx.one_time_tokens.consume(token_hash, when),
    "delete_one_time_tokens": lambda tx, pick, purpose: tx.one_time_tokens.delete_for_user(
        pick_user_id(tx, pick), purpose
    ),
    "purge_one_time_tokens": lambda tx, when: tx.one_time_tokens.purge_expired(when),
    "put_login_attempts": lambda tx, key, failures, locked_until, when: tx.login_attempts.put(
        LoginAttempts(key=key, failures=failures, locked_until=locked_until, updated_at=when)
    ),
    "delete_login_attempts": lambda tx, key: tx.login_attempts.delete(key),
    "purge_login_attempts": lambda tx, when: tx.login_attempts.purge_expired(when),
    "set_meta": lambda tx, key, value: tx.meta.set(key, value),
}


def op(name: str, *args: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.tuples(*args).map(lambda values: Op(name, values))


emails = st.sampled_from(EMAILS)
usernames = st.sampled_from(USERNAMES)
names = st.sampled_from(NAMES)
scopes = st.none() | st.frozensets(st.sampled_from(["a:b", "c:d"]), max_size=2)
operations = st.one_of(
    op("add_user", emails, usernames, names, role_sets, statuses, maybe_naive),
    op("add_many", st.lists(st.tuples(emails, usernames, role_sets), max_size=4)),
    op(
        "update_user",
        picks,
        emails,
        usernames,
        names,
        role_sets,
        statuses,
        moments,
        st.sampled_from([0, 0, 0, -1, 1]),
    ),
    op("delete_user", picks),
    op("remove_role", st.sampled_from(ROLES)),
    op("list_users", picks, st.integers(0, 4), st.sampled_from(FILTERS), st.integers(0, 3)),
    op("add_role", st.sampled_from(ROLES), role_sets, role_sets),
    op("update_role", st.sampled_from(ROLES), role_sets),
    op("delete_role", st.sampled_from(ROLES)),
    op("add_refresh_token", st.sampled_from(HASHES), picks, st.sampled_from(FAMILIES), moments),
    op("mark_used", st.sampled_from(HASHES), maybe_naive),
    op("revoke_family", st.sampled_from(FAMILIES), moments),
    op("revoke_user_tokens", picks, moments),
    op("purge_refresh_tokens", moments),
    op("revoke_jti", st.sampled_from(JTIS), maybe_naive),
    op("purge_revoked", moments),
    op("add_api_key", st.sampled_from(PREFIXES), picks, scopes, moments),
    op("update_api_key", st.sampled_from(PREFIXES), names.map(str), scopes, moments),
    op("revoke_user_keys", picks, moments),
    op("add_one_time_token", st.sampled_from(HASHES), picks, st.sampled_from(PURPOSES), moments),
    op("consume", st.sampled_from(HASHES), moments),
    op("delete_one_time_tokens", picks, st.none() | st.sampled_from(PURPOSES)),
    op("purge_one_time_tokens", moments),
    op(
        "put_login_attempts",
        st.sampled_from(LOGIN_KEYS),
        st.integers(0, 9),
        st.none() | moments,
        moments,
    ),
    op("delete_login_attempts", st.sampled_from(LOGIN_KEYS)),
    op("purge_login_attempts", moments),
    op("set_meta", st.sampled_from(META_KEYS), names.map(str)),
)


def walk(tx: UnitOfWork, query: UserFilter, page_size: int) -> list[User]:
    """Every user matching ``query``, a keyset page at a time."""
    found: list[User] = []
    after = None
    while page := tx.users.list(after=after, limit=page_size, filter=query):
        found += page
        after = page[-1].id
    return found


def snapshot(store: Store) -> dict[str, Any]:
    """Everything the ports can read back."""
    with store.transaction(readonly=True) as tx:
        users = walk(tx, EVERYONE, 7)
        return {
            "users": users,
            "filtered": {
                query: (walk(tx, query, 3), tx.users.count(filter=query)) for query in FILTERS
            },
            "pages": [
                tx.users.list(after=None, limit=2, filter=EVERYONE, offset=n) for n in (1, 3)
            ],
            "by_email": [tx.users.get_by_email(email_key(email)) for email in EMAILS],
            "by_username": [
                tx.users.get_by_username(username_key(name)) for name in USERNAMES if name
            ],
            "role_holders": [tx.users.count_with_role(role) for role in ROLES],
            "roles": tx.roles.list(),
            "roles_version": tx.roles.version(),
            "refresh_tokens": [tx.refresh_tokens.get(token_hash) for token_hash in HASHES],
            "revoked": [tx.revoked_tokens.is_revoked(jti) for jti in JTIS],
            "api_keys": [tx.api_keys.list_for_user(user.id) for user in users],
            "api_keys_by_prefix": [tx.api_keys.get_by_prefix(prefix) for prefix in PREFIXES],
            "one_time_tokens": [tx.one_time_tokens.get(token_hash) for token_hash in HASHES],
            "login_attempts": [tx.login_attempts.get(key) for key in LOGIN_KEYS],
            "meta": [tx.meta.get(key) for key in META_KEYS],
        }


class StoresAgree(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="usercore-stateful-")
        self.stores: tuple[Store, Store] = (
            MemoryStore(),
            SQLiteStore(Path(self.directory) / "users.db"),
        )

    @initialize()
    def start_with_three_users(self) -> None:
        seed = [
            Op("add_user", (f"seed{n}@example.com", None, None, frozenset({"user"}), status, T0))
            for n, status in enumerate([UserStatus.ACTIVE, UserStatus.INACTIVE, UserStatus.ACTIVE])
        ]
        self.commit_a_batch(seed)

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def on_both(self, run: Callable[[Store], Any]) -> None:
        memory, sqlite = (run(store) for store in self.stores)
        assert memory == sqlite

    @rule(operation=operations)
    def commit_one(self, operation: Op) -> None:
        def run(store: Store) -> Any:
            with store.transaction() as tx:
                return operation(tx)

        self.on_both(run)

    @rule(batch=st.lists(operations, min_size=1, max_size=4))
    def commit_a_batch(self, batch: list[Op]) -> None:
        def run(store: Store) -> Any:
            with store.transaction() as tx:
                return [operation(tx) for operation in batch]

        self.on_both(run)

    @rule(batch=st.lists(operations, min_size=1, max_size=4))
    def roll_back_a_batch(self, batch: list[Op]) -> None:
        def run(store: Store) -> Any:
            results: list[Any] = []
            try:
                with store.transaction() as tx:
                    results += [operation(tx) for operation in batch]
                    raise Rollback
            except Rollback:
                return results

        self.on_both(run)

    @rule(
        outer=st.lists(operations, max_size=2),
        inner=st.lists(operations, min_size=1, max_size=3),
        inner_fails=st.booleans(),
    )
    def nest_a_savepoint(self, outer: list[Op], inner: list[Op], inner_fails: bool) -> None:
        def run(store: Store) -> Any:
            with store.transaction() as tx:
                results = [operation(tx) for operation in outer]
                try:
                    with store.transaction() as nested:
                        results += [operation(nested) for operation in inner]
                        if inner_fails:
                            raise Rollback
                except Rollback:
                    results.append("inner rolled back")
                results += [operation(tx) for operation in outer[:1]]
                return results

        self.on_both(run)

    @invariant()
    def everything_readable_agrees(self) -> None:
        memory, sqlite = (snapshot(store) for store in self.stores)
        assert memory == sqlite


StoresAgree.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoresAgree = StoresAgree.TestCase
