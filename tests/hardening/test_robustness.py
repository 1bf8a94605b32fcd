"""Every public facade method survives arbitrary input.

For each method of ``core.users``, ``core.roles``, ``core.permissions``,
``core.auth``, ``core.api_keys`` and ``core.policy``, hypothesis feeds
arbitrary and hostile text (Unicode, NUL, lone surrogates, 100k characters),
values of the wrong Python type, negative and huge numbers and ids that do not
exist, acting as SYSTEM, an admin, a plain user, a narrowly scoped API key or
a forged principal.  For every call:

- the only exceptions that escape are the documented ``UsercoreError``
  subclasses of DESIGN §3 (never the bare base, which means "internal
  error"), or ``TypeError`` when some argument had the wrong Python type;
- a call that raised left the store exactly as it was (a full dump of the
  store before and after, see ``dump.py``), except for the writes DESIGN
  prescribes on failure: a failed login counts toward lockout, and a replayed
  refresh token revokes its family;
- a read-only method leaves the store unchanged even when it succeeds.

Each test reuses one store across its examples (building a store per example
would cost more than the calls), so the world drifts as successful calls
change it; the dump comparison is per call, which is what the property needs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from usercore import (
    SYSTEM,
    AccountLocked,
    AuthenticationError,
    ConflictError,
    InvalidCredentials,
    NotFoundError,
    PermissionDenied,
    Principal,
    TokenError,
    User,
    UserCore,
    UsercoreError,
    UserStatus,
    ValidationError,
)
from usercore.services.users import UPDATABLE_FIELDS, encode_cursor

from .conftest import World
from .dump import LOGIN_FAILURE_STATE, REFRESH_REVOCATION_STATE, diff, dump, without

DOCUMENTED_ERRORS = (
    ValidationError,
    NotFoundError,
    ConflictError,
    AuthenticationError,
    InvalidCredentials,
    AccountLocked,
    TokenError,
    PermissionDenied,
)

HUGE_INTS = [
    0,
    -1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    2**100,
    -(2**63),
    -(2**63) - 1,
    -(2**100),
]

NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\udc80y",
    "\ufeff",
    "\u202e",
    "\u200b",
    "\U0001f4a9",
    "ß",
    "İ",
    "ﬃ",
    "Å",
    "\n",
    "\r\n",
    "%",
    "_",
    "*",
    "\\",
    "'",
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    "../../etc/passwd",
    "None",
    "NaN",
    "-1",
    "9" * 30,
    "admin",
    "user",
    "editor",
    "users:*",
    "users:read",
    "users:read:own",
    "*:*",
    "uc_",
    "Bearer x",
    "ada@example.com",
    "ADA@EXAMPLE.COM",
    " ada@example.com ",
    "ada",
    "root@example.com",
    "\x00@example.com",
    "ada@example.com\x00",
    "\ud800@example.com",
    "a@b",
    "@",
    "x" * 100_000,
    "a" * 100_000 + "@example.com",
    "\x00" * 1_000,
    "é" * 100_000,
    "\ud800" * 1_000,
    "correct horse battery staple\ud800",
]

SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]

texts = st.one_of(
    st.text(),
    # st.text() leaves out lone surrogates (category Cs); these do not.
    st.text(alphabet=st.characters(exclude_categories=())),
    st.sampled_from(NASTY_TEXT),
    st.builds(
        lambda head, middle, tail: head + middle + tail,
        st.text(max_size=8),
        st.sampled_from(NASTY_TEXT[:30] + SURROGATES),
        st.text(max_size=8),
    ),
)
short_texts = st.one_of(st.text(max_size=12), st.sampled_from(NASTY_TEXT[:30]))

wrong_types_but_none = st.one_of(
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(),
    st.binary(max_size=16),
    st.sampled_from([b"\xff\xfe", b"ada@example.com"]),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from([object(), (), set(), 1j, timedelta(seconds=1)]),
)
wrong_types = st.one_of(st.none(), wrong_types_but_none)

KNOWN_PERMISSIONS = [
    "*",
    "users:*",
    "users:read",
    "users:read:own",
    "users:update",
    "users:update:own",
    "roles:assign",
    "apikeys:*:own",
    "unknown:thing",
    "users:read:mine",
    "Users:Read",
]
GOOD_PASSWORDS = ["a perfectly fine passphrase", "another long passphrase 42"]


def _has_surrogate(value: object, depth: int = 0) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if depth > 3:
        return False
    if isinstance(value, Mapping):
        return _has_surrogate(list(value.items()), depth + 1)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_surrogate(item, depth + 1) for item in value)
    if isinstance(value, Principal):
        return _has_surrogate(value.roles, depth + 1)
    return False


def flip_char(token: str, index: int) -> str:
    """``token`` with one character changed (a tampered signature, prefix or secret)."""
    index = min(index, len(token) - 1)
    return token[:index] + chr((ord(token[index]) + 1) % 128) + token[index + 1 :]


class Args:
    """Draws the arguments of one call and remembers whether any had a wrong type."""

    def __init__(self, data: st.DataObject, world: World) -> None:
        self._data = data
        self.world = world
        self.ill_typed = False
        self.drawn: list[object] = []

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        value = self._data.draw(strategy)
        self.drawn.append(value)
        return value

    def either(self, good: st.SearchStrategy[Any], *, optional: bool = False) -> Any:
        """A value from ``good`` (``None`` too when optional), or, one time in four,
        one of the wrong type (rarer than that, and calls with several arguments
        would almost never get past the type checks)."""
        ill = self._data.draw(st.sampled_from([False, False, False, True]))
        if ill:
            self.ill_typed = True
            return self.draw(wrong_types_but_none if optional else wrong_types)
        return self.draw(st.one_of(st.none(), good) if optional else good)

    # -- argument kinds --------------------------------------------------------

    def text(self, *, optional: bool = False) -> Any:
        return self.either(texts, optional=optional)

    def email(self) -> Any:
        return self.either(
            st.one_of(texts, st.emails(), st.sampled_from(self.world.emails)),
        )

    def password(self) -> Any:
        return self.either(
            st.one_of(texts, st.sampled_from(self.world.passwords + tuple(GOOD_PASSWORDS)))
        )

    def user_id(self, *, optional: bool = False) -> Any:
        return self.either(
            st.one_of(
                st.sampled_from(self.world.user_ids),
                st.integers(),
                st.sampled_from(HUGE_INTS),
            ),
            optional=optional,
        )

    def key_id(self) -> Any:
        return self.either(
            st.one_of(
                st.sampled_from(self.world.key_ids), st.integers(), st.sampled_from(HUGE_INTS)
            )
        )

    def principal(self) -> Principal:
        forged = st.builds(
            Principal,
            user_id=st.one_of(
                st.none(),
                st.integers(),
                st.sampled_from(HUGE_INTS + list(self.world.user_ids)),
            ),
            roles=st.frozensets(
                st.one_of(short_texts, st.sampled_from(self.world.role_names)), max_size=3
            ),
            scopes=st.one_of(st.none(), st.frozensets(st.sampled_from(KNOWN_PERMISSIONS))),
            method=st.sampled_from(["token", "api_key"]),
        )
        principal: Principal = self.draw(st.one_of(st.sampled_from(self.world.principals), forged))
        return principal

    def role_name(self) -> Any:
        return self.either(st.one_of(st.sampled_from(self.world.role_names), texts))

    def role_names(self) -> Any:
        names = st.one_of(st.sampled_from(self.world.role_names), short_texts)
        return self.either(
            st.one_of(
                st.lists(names, max_size=4),
                st.frozensets(names, max_size=3),
                st.tuples(names),
            )
        )

    def status(self) -> Any:
        return self.either(
            st.one_of(
                st.sampled_from(
                    [UserStatus.ACTIVE, UserStatus.INACTIVE, "active", "inactive", "ACTIVE"]
                ),
                short_texts,
            )
        )

    def permission(self) -> Any:
        return self.either(st.one_of(st.sampled_from(KNOWN_PERMISSIONS), texts))

    def permissions(self, *, optional: bool = False) -> Any:
        grants = st.one_of(st.sampled_from(KNOWN_PERMISSIONS), short_texts)
        return self.either(
            st.one_of(st.lists(grants, max_size=4), st.frozensets(grants, max_size=3)),
            optional=optional,
        )

    def token(self, *, optional: bool = False) -> Any:
        real = st.sampled_from(self.world.tokens)
        tampered = st.one_of(
            st.builds(lambda t, s: t + s, real, short_texts),
            st.builds(lambda t, n: t[:n], real, st.integers(0, 60)),
            st.builds(
                lambda t, i: t[:i] + chr((ord(t[i]) + 1) % 128) + t[i + 1 :],
                real,
                st.integers(0, 20),
            ),
            st.builds(
                lambda p: f"uc_{p}_" + "A" * 43, st.text("abcXYZ019", min_size=8, max_size=8)
            ),
        )
        return self.either(st.one_of(real, tampered, texts), optional=optional)

    def expires_in(self) -> Any:
        return self.either(
            st.one_of(
                st.integers(),
                st.sampled_from(HUGE_INTS),
                st.sampled_from(
                    [timedelta(0), timedelta(-1), timedelta.max, timedelta.min, timedelta(days=1)]
                ),
                st.timedeltas(),
            ),
            optional=True,
        )

    def positive_int(self, *, optional: bool = False) -> Any:
        return self.either(
            st.one_of(st.integers(), st.sampled_from(HUGE_INTS), st.integers(1, 100)),
            optional=optional,
        )

    def cursor(self) -> Any:
        return self.either(
            st.one_of(
                texts,
                st.builds(encode_cursor, st.one_of(st.integers(0, 10), st.sampled_from(HUGE_INTS))),
            ),
            optional=True,
        )

    def anything(self) -> Any:
        """A value for a field of any kind: text, names, a status or a wrong type."""
        return self.either(
            st.one_of(
                texts,
                st.emails(),
                st.lists(
                    st.one_of(st.sampled_from(self.world.role_names), short_texts), max_size=3
                ),
                st.sampled_from(["active", "inactive", UserStatus.INACTIVE]),
            )
        )

    def changes(self) -> dict[str, Any]:
        """Keyword arguments for ``users.update``: known fields and unknown ones."""
        keys = self.draw(
            st.lists(
                st.one_of(st.sampled_from(sorted(UPDATABLE_FIELDS)), short_texts).filter(
                    lambda k: k not in ("self", "actor", "user_id")
                ),
                max_size=3,
                unique=True,
            )
        )
        return {key: self.anything() for key in keys}

    def records(self) -> Any:
        fields = st.sampled_from(
            ["email", "username", "name", "roles", "role", "status", "password", "password_hash"]
        )
        values = st.one_of(
            texts,
            st.emails(),
            wrong_types,
            st.sampled_from(
                [
                    "pbkdf2_sha256$1$salt$AAAA",
                    "argon2$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAA",
                    ["user"],
                    ["admin", "nope"],
                    GOOD_PASSWORDS[0],
                ]
            ),
        )
        record = st.one_of(
            st.dictionaries(st.one_of(fields, short_texts), values, max_size=4),
            st.fixed_dictionaries(
                {"email": st.one_of(st.emails(), texts)},
                optional={"password": st.sampled_from(GOOD_PASSWORDS), "roles": values},
            ),
        )
        return self.either(
            st.one_of(st.lists(record, max_size=4), st.lists(wrong_types, min_size=1, max_size=2))
        )


Call = Callable[[UserCore, Args], object]

# Every public facade method, with each argument drawn from its hostile pool.
CALLS: dict[str, Call] = {
    "users.register": lambda c, a: c.users.register(
        email=a.email(),
        password=a.password(),
        username=a.text(optional=True),
        name=a.text(optional=True),
        invitation=a.text(optional=True),
    ),
    "users.invite": lambda c, a: c.users.invite(
        a.principal(),
        email=a.email(),
        username=a.text(optional=True),
        name=a.text(optional=True),
        roles=a.role_names(),
    ),
    "users.create": lambda c, a: c.users.create(
        a.principal(),
        email=a.email(),
        password=a.either(texts, optional=True),
        username=a.text(optional=True),
        name=a.text(optional=True),
        roles=a.role_names(),
        status=a.status(),
    ),
    "users.get": lambda c, a: c.users.get(a.principal(), a.user_id()),
    "auth.may_resend_verification": lambda c, a: c.auth.may_resend_verification(a.user_id()),
    "users.get_by_email": lambda c, a: c.users.get_by_email(a.principal(), a.email()),
    "users.list": lambda c, a: c.users.list(
        a.principal(),
        page=a.positive_int(optional=True),
        per_page=a.positive_int(),
        cursor=a.cursor(),
        role=a.either(st.one_of(st.sampled_from(a.world.role_names), texts), optional=True),
        status=a.either(st.sampled_from(["active", "inactive", "nope"]), optional=True),
        search=a.text(optional=True),
    ),
    "users.update": lambda c, a: c.users.update(a.principal(), a.user_id(), **a.changes()),
    "users.change_password": lambda c, a: c.users.change_password(
        a.principal(),
        a.user_id(),
        current_password=a.password(),
        new_password=a.password(),
    ),
    "users.set_password": lambda c, a: c.users.set_password(
        a.principal(), a.user_id(), a.password()
    ),
    "users.set_status": lambda c, a: c.users.set_status(a.principal(), a.user_id(), a.status()),
    "users.assign_roles": lambda c, a: c.users.assign_roles(
        a.principal(), a.user_id(), a.role_names()
    ),
    "users.delete": lambda c, a: c.users.delete(a.principal(), a.user_id()),
    "users.import_users": lambda c, a: c.users.import_users(
        a.principal(), a.records(), batch_size=a.positive_int()
    ),
    "roles.create": lambda c, a: c.roles.create(
        a.principal(),
        a.role_name(),
        permissions=a.permissions(),
        inherits=a.role_names(),
        description=a.text(),
    ),
    "roles.get": lambda c, a: c.roles.get(a.principal(), a.role_name()),
    "roles.list": lambda c, a: c.roles.list(a.principal()),
    "roles.update": lambda c, a: c.roles.update(
        a.principal(),
        a.role_name(),
        permissions=a.permissions(optional=True),
        inherits=a.either(st.lists(st.sampled_from(a.world.role_names)), optional=True),
        description=a.text(optional=True),
    ),
    "roles.set_permissions": lambda c, a: c.roles.set_permissions(
        a.principal(), a.role_name(), a.permissions()
    ),
    "roles.delete": lambda c, a: c.roles.delete(
        a.principal(), a.role_name(), force=a.either(st.booleans())
    ),
    "permissions.register": lambda c, a: c.permissions.register(a.permission(), a.text()),
    "permissions.list": lambda c, a: c.permissions.list(),
    "auth.login": lambda c, a: c.auth.login(
        a.either(st.one_of(st.sampled_from((*a.world.emails, "ada")), texts)), a.password()
    ),
    "auth.authenticate": lambda c, a: c.auth.authenticate(a.token()),
    "auth.authenticate_api_key": lambda c, a: c.auth.authenticate_api_key(a.token()),
    "auth.refresh": lambda c, a: c.auth.refresh(a.token()),
    "auth.logout": lambda c, a: c.auth.logout(a.token(), a.token(optional=True)),
    "auth.logout_all": lambda c, a: c.auth.logout_all(a.principal(), a.user_id()),
    "auth.request_password_reset": lambda c, a: c.auth.request_password_reset(a.email()),
    "auth.reset_password": lambda c, a: c.auth.reset_password(a.token(), a.password()),
    "auth.request_email_verification": lambda c, a: c.auth.request_email_verification(
        a.principal(), a.user_id()
    ),
    "auth.verify_email": lambda c, a: c.auth.verify_email(a.token()),
    "auth.reset_recipient": lambda c, a: c.auth.reset_recipient(a.token()),
    "api_keys.create": lambda c, a: c.api_keys.create(
        a.principal(),
        a.user_id(),
        name=a.text(),
        scopes=a.permissions(optional=True),
        expires_in=a.expires_in(),
    ),
    "api_keys.list": lambda c, a: c.api_keys.list(a.principal(), a.user_id()),
    "api_keys.revoke": lambda c, a: c.api_keys.revoke(a.principal(), a.key_id()),
    "policy.is_allowed": lambda c, a: c.policy.is_allowed(
        a.principal(), a.permission(), owner_id=a.user_id(optional=True)
    ),
    "policy.require": lambda c, a: c.policy.require(
        a.principal(), a.permission(), owner_id=a.user_id(optional=True)
    ),
    "policy.explain": lambda c, a: c.policy.explain(
        a.principal(), a.permission(), owner_id=a.user_id(optional=True)
    ),
    "policy.holds": lambda c, a: c.policy.holds(a.principal(), a.permission()),
    "policy.explain_delegation": lambda c, a: c.policy.explain_delegation(
        a.principal(),
        grants=a.permissions(optional=True) or (),
        target_roles=a.permissions(optional=True),
    ),
}

# Methods that never write, whatever the outcome.
READ_ONLY = frozenset(
    {
        "users.get",
        "users.get_by_email",
        "users.list",
        "roles.get",
        "roles.list",
        "permissions.list",
        "auth.authenticate",
        "api_keys.list",
        "policy.is_allowed",
        "policy.require",
        "policy.explain",
        "policy.holds",
        "policy.explain_delegation",
        "auth.reset_recipient",
    }
)

# The writes DESIGN prescribes on failure; everything else must stay as it was.
FAILURE_MAY_WRITE = {
    "auth.login": LOGIN_FAILURE_STATE,  # failed logins count toward lockout (DESIGN §6)
    "auth.refresh": REFRESH_REVOCATION_STATE,  # a replay revokes the family (DESIGN §6)
    # A wrong current password counts toward lockout (issue 12 item 12).
    "users.change_password": LOGIN_FAILURE_STATE,
}

ROBUST = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.mark.parametrize("method", sorted(CALLS))
@ROBUST
@given(data=st.data())
def test_only_documented_errors_escape_and_a_failed_call_writes_nothing(
    world: World, method: str, data: st.DataObject
) -> None:
    """Hostile arguments get a documented error (or TypeError for a wrong type),
    and a call that raised changed nothing."""
    args = Args(data, world)
    store = world.core.store
    before = dump(store)
    error: BaseException | None = None
    try:
        CALLS[method](world.core, args)
    except DOCUMENTED_ERRORS as exc:
        event(f"{method}: {type(exc).__name__}")
        error = exc
    except TypeError as exc:
        if not args.ill_typed:
            raise
        event(f"{method}: TypeError (wrong argument type)")
        error = exc
    else:
        event(f"{method}: succeeded")
    after = dump(store)
    if isinstance(error, UsercoreError):
        assert type(error) is not UsercoreError  # the bare base means "internal error"
        if not args.ill_typed:
            # The error body is JSON (a PermissionDenied for a bytes permission
            # carries the bytes: a caller's type error, not checked here).
            json.dumps(error.to_dict())
    if error is None:
        if method in READ_ONLY:
            assert before == after, f"{method} succeeded and wrote:\n{diff(before, after)}"
        return
    mask = FAILURE_MAY_WRITE.get(method)
    if mask is not None:
        before, after = without(before, mask), without(after, mask)
    assert before == after, f"{method} raised {error!r} and wrote:\n{diff(before, after)}"


def test_every_public_facade_method_is_covered(world: World) -> None:
    """CALLS lists every public method of every facade service (so a new one gets fuzzed)."""
    core = world.core
    services = {
        "users": core.users,
        "roles": core.roles,
        "permissions": core.permissions,
        "auth": core.auth,
        "api_keys": core.api_keys,
        "policy": core.policy,
    }
    public = {
        f"{name}.{attr}"
        for name, service in services.items()
        for attr in dir(service)
        if not attr.startswith("_") and callable(getattr(service, attr))
    }
    # Helpers outside DESIGN §4's facade list: an export iterator built on
    # users.list, and the policy's cache controls and table inspection.
    extras = {
        "users.iter_all",
        "policy.effective_permissions",
        "policy.from_roles",
        "policy.invalidate",
        "policy.refresh_due",
    }
    assert public - extras == set(CALLS)


# -- the dump itself: it sees every write, and refuses what it cannot see --------


def test_the_dump_sees_every_kind_of_write(world: World) -> None:
    """Otherwise "the dump did not change" would prove nothing."""
    core, ada = world.core, world.ada
    pair = core.auth.login("ada", world.passwords[0])
    other = core.auth.login("ada", world.passwords[0])  # logout ends pair's family
    writes: list[Callable[[], object]] = [
        lambda: core.users.register(email="new@example.com", password=world.passwords[0]),
        lambda: core.users.update(SYSTEM, ada.id, name="Ada L."),
        lambda: core.roles.create(SYSTEM, "viewer", permissions=["users:read"]),
        lambda: core.api_keys.create(SYSTEM, ada.id, name="another"),
        lambda: core.auth.logout(pair.access_token),  # revoked_tokens
        lambda: core.auth.refresh(other.refresh_token),  # refresh_tokens
        lambda: core.auth.request_password_reset("root@example.com"),  # one_time_tokens
        lambda: core.auth.login("nobody@example.com", "wrong"),  # login_attempts
    ]
    for write in writes:
        before = dump(core.store)
        with contextlib.suppress(InvalidCredentials):
            write()
        assert before != dump(core.store)


def test_the_dump_refuses_a_store_with_a_transaction_left_open(world: World) -> None:
    """A dump that read half-done work would make "unchanged" checks meaningless."""
    store = world.core.store
    with store.transaction() as tx:
        tx.meta.set("half", "done")
        if world.store_kind == "memory":
            # The lock is held: the dump cannot read and says so.
            with pytest.raises(AssertionError, match="left a transaction open"):
                dump(store, timeout=0.5)
        else:
            assert "half" not in {row["key"] for row in dump(store)["meta"]}


# -- the exceptions to "a failed call writes nothing", pinned exactly -----------


def test_a_failed_login_changes_only_the_lockout_state(world: World) -> None:
    store = world.core.store
    before = dump(store)
    with pytest.raises(InvalidCredentials):
        world.core.auth.login("ada", "not the password at all")
    with pytest.raises(InvalidCredentials):
        world.core.auth.login("nobody@example.com", "not the password at all")
    after = dump(store)
    assert before != after  # the failures were counted
    assert without(before, LOGIN_FAILURE_STATE) == without(after, LOGIN_FAILURE_STATE)


def test_a_replayed_refresh_token_only_revokes_its_family(world: World) -> None:
    core = world.core
    pair = core.auth.login("ada", world.passwords[0])
    rotated = core.auth.refresh(pair.refresh_token)
    before = dump(core.store)
    with pytest.raises(TokenError):
        core.auth.refresh(pair.refresh_token)  # replay
    after = dump(core.store)
    assert without(before, REFRESH_REVOCATION_STATE) == without(after, REFRESH_REVOCATION_STATE)
    newly_revoked = [
        row
        for row in after["refresh_tokens"]
        if row["revoked_at"] is not None and row not in before["refresh_tokens"]
    ]
    assert 2 == len(newly_revoked)  # the replayed token and its successor, nothing else
    assert 1 == len({row["family_id"] for row in newly_revoked})
    with pytest.raises(TokenError):
        core.auth.refresh(rotated.refresh_token)


# -- product bugs found by the property above -----------------------------------

SURROGATE = "\ud800"

# Calls whose SQL lookup binds caller text; MemoryStore answers them, SQLiteStore
# lets sqlite3's UnicodeEncodeError escape.
SURROGATE_LOOKUPS: dict[str, Callable[[UserCore, User], object]] = {
    "users.get_by_email": lambda c, u: c.users.get_by_email(SYSTEM, SURROGATE + "@example.com"),
    "users.list(search)": lambda c, u: c.users.list(SYSTEM, search=SURROGATE),
    "users.list(role)": lambda c, u: c.users.list(SYSTEM, role=SURROGATE),
    "users.assign_roles": lambda c, u: c.users.assign_roles(SYSTEM, u.id, [SURROGATE]),
    "users.create(roles)": lambda c, u: c.users.create(
        SYSTEM, email="new@example.com", roles=[SURROGATE]
    ),
    "roles.get": lambda c, u: c.roles.get(SYSTEM, SURROGATE),
    "roles.update": lambda c, u: c.roles.update(SYSTEM, SURROGATE, description="x"),
    "roles.delete": lambda c, u: c.roles.delete(SYSTEM, SURROGATE),
    "auth.login(username)": lambda c, u: c.auth.login(SURROGATE, "whatever password"),
    "auth.login(email)": lambda c, u: c.auth.login(SURROGATE + "@example.com", "whatever password"),
    "auth.request_password_reset": lambda c, u: c.auth.request_password_reset(
        SURROGATE + "@example.com"
    ),
}

EXPECTED_ANSWER: dict[str, tuple[type[BaseException], ...]] = {
    "users.get_by_email": (NotFoundError,),
    "users.list(search)": (),
    "users.list(role)": (),
    "users.assign_roles": (ValidationError,),
    "users.create(roles)": (ValidationError,),
    "roles.get": (NotFoundError,),
    "roles.update": (NotFoundError,),
    "roles.delete": (NotFoundError,),
    "auth.login(username)": (InvalidCredentials,),
    "auth.login(email)": (InvalidCredentials,),
    "auth.request_password_reset": (),
}


def _surrogate_cases() -> list[Any]:
    return [
        pytest.param(kind, name, id=f"{kind}-{name}")
        for kind in ("memory", "sqlite")
        for name in sorted(SURROGATE_LOOKUPS)
    ]


@pytest.mark.parametrize(("store_kind", "lookup"), _surrogate_cases())
def test_sqlite_lookups_survive_lone_surrogates(
    core: UserCore, ada: User, store_kind: str, lookup: str
) -> None:
    """Text with a lone surrogate can never be stored (validation refuses it), so a
    lookup by it finds nothing: the documented answer, on every store."""
    expected = EXPECTED_ANSWER[lookup]
    if expected:
        with pytest.raises(expected):
            SURROGATE_LOOKUPS[lookup](core, ada)
    else:
        SURROGATE_LOOKUPS[lookup](core, ada)


@pytest.mark.parametrize("token", [SURROGATE, "eyJhbGciOiJIUzI1NiJ9." + SURROGATE + ".x"])
@pytest.mark.parametrize("call", ["authenticate", "logout"])
def test_an_access_token_with_a_lone_surrogate_is_an_invalid_token(
    core: UserCore, call: str, token: str
) -> None:
    """DESIGN §3: every token failure is the one opaque TokenError."""
    check: Callable[[str], object] = (
        core.auth.authenticate if call == "authenticate" else core.auth.logout
    )
    with pytest.raises(TokenError):
        check(token)
