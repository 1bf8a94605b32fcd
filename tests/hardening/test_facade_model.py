"""The whole facade against a reference model, on MemoryStore and SQLiteStore.

A hypothesis state machine registers, logs in (right and wrong passwords, by
email in any case), refreshes (fresh, spent and revoked tokens), logs out,
logs out everywhere, changes roles (built-in and a custom role), deactivates
and reactivates, deletes, changes passwords and moves the clock (up to 20
minutes at a time, across access-token expiry and lockout windows).  A model
made of plain dicts predicts every outcome:

- login succeeds, raises ``InvalidCredentials`` or ``AccountLocked`` (with the
  exact ``retry_after``) exactly when the model says: DESIGN §6 lockout,
  threshold 5, 60 s doubling per further failure up to 15 min, a lock applies
  from the next attempt, attempts while locked raise ``AccountLocked`` and do
  not count, success resets; unknown identifiers lock like accounts; an
  inactive account fails (and counts) like a wrong password (DESIGN §3);
- a refresh succeeds exactly when the model says, and a replay revokes the
  family (DESIGN §6);
- after every step, every access token ever issued authenticates exactly when
  the model says it is valid (not expired beyond the leeway, not logged out,
  its user still there, active and at the token's version), as that user with
  the model's roles; and ``users.list(SYSTEM)`` holds exactly the model's
  users, with their email, roles, status and lockout state.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from tests.services.conftest import FakeClock, make_settings
from usercore import (
    SYSTEM,
    AccountLocked,
    ConflictError,
    InvalidCredentials,
    NotFoundError,
    TokenError,
    TokenPair,
    UserCore,
    UserStatus,
    ValidationError,
)

EMAILS = ["alice@example.com", "bob@example.com", "carol@example.com"]
# Login identifiers: the emails as registered, in other case and with spaces
# (the same accounts), and one that is never registered.
IDENTIFIERS = [*EMAILS, "ALICE@Example.COM", " bob@example.com ", "nobody@example.com"]
PASSWORDS = [
    "correct horse battery staple",
    "a perfectly fine passphrase",
    "another long passphrase 42",
]
WRONG_PASSWORD = "certainly not the password"
CUSTOM_ROLES = {"editor": ["users:read"], "auditor": ["roles:read"]}
ROLE_NAMES = ["admin", "user", *CUSTOM_ROLES]
# An id no store hands out in a run this short.
NEVER_ISSUED_ID = 10**9

# The defaults of DESIGN §4 and §6, which make_settings() keeps.
ACCESS_TTL = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)
REFRESH_TTL = timedelta(days=14)
LOCKOUT_THRESHOLD = 5
LOCKOUT_BASE = timedelta(seconds=60)
LOCKOUT_MAX = timedelta(minutes=15)


def lockout_for(failures: int) -> timedelta | None:
    """DESIGN §6: locked at the threshold for the base time, doubling per further failure."""
    if failures < LOCKOUT_THRESHOLD:
        return None
    # 60 s * 2**4 is already past the maximum; a bounded exponent keeps a
    # patient guesser's 40th failure from overflowing timedelta.
    doublings = min(failures - LOCKOUT_THRESHOLD, 8)
    delay: timedelta = min(LOCKOUT_BASE * 2**doublings, LOCKOUT_MAX)
    return delay


@attrs.define
class Throttle:
    """Consecutive failed logins and the lock they caused."""

    failures: int = 0
    locked_until: datetime | None = None


@attrs.define
class ModelUser:
    id: int
    email: str
    password: str
    status: UserStatus = UserStatus.ACTIVE
    roles: frozenset[str] = frozenset({"user"})
    throttle: Throttle = attrs.field(factory=Throttle)
    token_version: int = 0


@attrs.define
class ModelAccess:
    user_id: int
    token_version: int
    expires_at: datetime
    family: int
    logged_out: bool = False


@attrs.define
class ModelRefresh:
    user_id: int
    family: int
    token_version: int
    expires_at: datetime
    used: bool = False
    revoked: bool = False
    gone: bool = False  # deleted with its user


def key_of(identifier: str) -> str:
    return identifier.strip().casefold()


class FacadeMachine(RuleBasedStateMachine):
    """``UserCore`` on one store against the reference model."""

    store_kind: ClassVar[str] = "memory"

    pairs = Bundle("pairs")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.tmp: str | None = None
        if self.store_kind == "memory":
            url = "memory://"
        else:
            self.tmp = tempfile.mkdtemp(prefix="usercore-model-")
            url = f"sqlite:///{Path(self.tmp) / 'users.db'}"
        self.core = UserCore.open(url, settings=make_settings(), clock=self.clock)
        # The model.
        self.users: dict[str, ModelUser] = {}  # by email key
        self.unknown: dict[str, Throttle] = {}  # throttles of identifiers without an account
        self.access: dict[str, ModelAccess] = {}  # by token text
        self.refresh_tokens: dict[str, ModelRefresh] = {}  # by token text
        self.roles = {"admin", "user"}
        self.issued_ids: list[int] = []
        self.families = 0

    def teardown(self) -> None:
        self.core.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- model helpers ------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now

    def user_by_id(self, user_id: int) -> ModelUser | None:
        return next((user for user in self.users.values() if user.id == user_id), None)

    def target_id(self, email: str) -> int:
        """The id of the account with ``email``, or one that does not exist."""
        user = self.users.get(key_of(email))
        if user is not None:
            return user.id
        gone = [i for i in self.issued_ids if self.user_by_id(i) is None]
        return gone[-1] if gone else NEVER_ISSUED_ID

    def throttle_of(self, identifier: str) -> Throttle:
        """The lockout state a login with ``identifier`` meets: its account's, or
        (no account) the identifier's own."""
        key = key_of(identifier)
        user = self.users.get(key)
        return user.throttle if user is not None else self.unknown.setdefault(key, Throttle())

    def access_is_valid(self, record: ModelAccess) -> bool:
        user = self.user_by_id(record.user_id)
        return (
            not record.logged_out
            and self.now < record.expires_at + LEEWAY
            and user is not None
            and user.status is UserStatus.ACTIVE
            and user.token_version == record.token_version
        )

    def issue_pair(self, pair: TokenPair, user: ModelUser, family: int, expires: datetime) -> None:
        assert pair.access_token not in self.access
        assert pair.refresh_token not in self.refresh_tokens
        self.access[pair.access_token] = ModelAccess(
            user_id=user.id,
            token_version=user.token_version,
            expires_at=self.now + ACCESS_TTL,
            family=family,
        )
        self.refresh_tokens[pair.refresh_token] = ModelRefresh(
            user_id=user.id, family=family, token_version=user.token_version, expires_at=expires
        )

    def revoke_family(self, family: int) -> None:
        for record in self.refresh_tokens.values():
            if record.family == family and not record.gone:
                record.revoked = True

    def end_sessions(self, user: ModelUser) -> None:
        """What logout_all, a password change and deactivation do: a new token
        version (every access token dies), every refresh token revoked, and
        fresh lockout counters (they belong to one token version)."""
        user.token_version += 1
        user.throttle = Throttle()
        for record in self.refresh_tokens.values():
            if record.user_id == user.id and not record.gone:
                record.revoked = True

    # -- accounts -------------------------------------------------------------------

    @initialize(
        accounts=st.dictionaries(
            st.sampled_from(EMAILS), st.sampled_from(PASSWORDS), min_size=1, max_size=3
        )
    )
    def open_accounts(self, accounts: dict[str, str]) -> None:
        """Start with some accounts, so that short runs reach sessions and lockouts."""
        for email, password in sorted(accounts.items()):
            self.register(email, password)

    @rule(email=st.sampled_from(EMAILS), password=st.sampled_from(PASSWORDS))
    def register(self, email: str, password: str) -> None:
        key = key_of(email)
        if key in self.users:
            with pytest.raises(ConflictError) as conflict:
                self.core.users.register(email=email, password=password)
            assert "email" == conflict.value.field
            return
        user = self.core.users.register(email=email, password=password)
        assert email == user.email
        assert all(user.id > issued for issued in self.issued_ids)  # ids are never reused
        self.issued_ids.append(user.id)
        self.users[key] = ModelUser(id=user.id, email=email, password=password)

    @rule(email=st.sampled_from(EMAILS))
    def delete(self, email: str) -> None:
        user_id = self.target_id(email)
        user = self.users.get(key_of(email))
        if user is None:
            with pytest.raises(NotFoundError):
                self.core.users.delete(SYSTEM, user_id)
            return
        self.core.users.delete(SYSTEM, user_id)
        del self.users[key_of(email)]
        for record in self.refresh_tokens.values():
            if record.user_id == user_id:
                record.gone = True  # the store deletes them with the user

    @rule(email=st.sampled_from(EMAILS), status=st.sampled_from(list(UserStatus)))
    def set_status(self, email: str, status: UserStatus) -> None:
        user = self.users.get(key_of(email))
        if user is None:
            with pytest.raises(NotFoundError):
                self.core.users.set_status(SYSTEM, self.target_id(email), status)
            return
        saved = self.core.users.set_status(SYSTEM, user.id, status)
        assert status is saved.status
        if user.status is UserStatus.ACTIVE and status is UserStatus.INACTIVE:
            self.end_sessions(user)
        user.status = status

    @rule(
        email=st.sampled_from(EMAILS),
        knows_current=st.booleans(),
        new_password=st.sampled_from(PASSWORDS),
    )
    def change_password(self, email: str, knows_current: bool, new_password: str) -> None:
        user = self.users.get(key_of(email))
        current = user.password if user is not None and knows_current else WRONG_PASSWORD
        change = self.core.users.change_password
        if user is None:
            with pytest.raises(NotFoundError):
                change(
                    SYSTEM,
                    self.target_id(email),
                    current_password=current,
                    new_password=new_password,
                )
            return
        throttle = user.throttle  # the same counters as a login with the email
        if throttle.locked_until is not None and self.now < throttle.locked_until:
            with pytest.raises(AccountLocked):
                change(SYSTEM, user.id, current_password=current, new_password=new_password)
            return
        if not knows_current:
            with pytest.raises(ValidationError) as invalid:
                change(SYSTEM, user.id, current_password=current, new_password=new_password)
            assert "current_password" in invalid.value.errors
            self.count_failure(throttle)  # a wrong current password counts toward lockout
            return
        change(SYSTEM, user.id, current_password=current, new_password=new_password)
        user.password = new_password
        self.end_sessions(user)  # a new password clears any lockout

    # -- roles --------------------------------------------------------------------

    @rule(name=st.sampled_from(sorted(CUSTOM_ROLES)))
    def create_role(self, name: str) -> None:
        if name in self.roles:
            with pytest.raises(ConflictError):
                self.core.roles.create(SYSTEM, name, permissions=CUSTOM_ROLES[name])
            return
        self.core.roles.create(SYSTEM, name, permissions=CUSTOM_ROLES[name])
        self.roles.add(name)

    @rule(
        email=st.sampled_from(EMAILS),
        roles=st.frozensets(st.sampled_from(ROLE_NAMES), max_size=3),
    )
    def assign_roles(self, email: str, roles: frozenset[str]) -> None:
        user = self.users.get(key_of(email))
        assign = self.core.users.assign_roles
        if user is None:
            with pytest.raises(NotFoundError):
                assign(SYSTEM, self.target_id(email), roles)
            return
        if roles - self.roles:
            with pytest.raises(ValidationError) as invalid:
                assign(SYSTEM, user.id, roles)
            assert "roles" in invalid.value.errors
            return
        assert roles == assign(SYSTEM, user.id, roles).roles
        user.roles = roles

    # -- sessions -------------------------------------------------------------------

    @rule(target=pairs, identifier=st.sampled_from(IDENTIFIERS), right=st.booleans())
    def login(self, identifier: str, right: bool) -> object:
        pair = self.attempt_login(identifier, right=right)
        return multiple() if pair is None else pair

    @rule(target=pairs, email=st.sampled_from(EMAILS))
    def login_with_the_right_password(self, email: str) -> object:
        """Logins that should mostly succeed, so that runs reach refresh and logout."""
        return self.login(email, right=True)

    @rule(
        identifier=st.sampled_from(IDENTIFIERS),
        times=st.integers(1, 10),
        patient=st.booleans(),
    )
    def guess_passwords(self, identifier: str, times: int, patient: bool) -> None:
        """Several wrong passwords in a row: reaches the lockout threshold in a short
        run.  A patient guesser waits out each lock first, so the failures keep
        counting and the lock escalates to its maximum."""
        for _ in range(times):
            if patient:
                throttle = self.throttle_of(identifier)
                if throttle.locked_until is not None and self.now < throttle.locked_until:
                    self.clock.advance(seconds=(throttle.locked_until - self.now).total_seconds())
            self.attempt_login(identifier, right=False)

    def attempt_login(self, identifier: str, *, right: bool) -> TokenPair | None:
        """One login, its outcome predicted by the model (which it then updates)."""
        key = key_of(identifier)
        user = self.users.get(key)
        password = user.password if user is not None and right else WRONG_PASSWORD
        throttle = self.throttle_of(identifier)
        if throttle.locked_until is not None and self.now < throttle.locked_until:
            wait = math.ceil((throttle.locked_until - self.now).total_seconds())
            with pytest.raises(AccountLocked) as locked:
                self.core.auth.login(identifier, password)
            assert max(1, wait) == locked.value.retry_after
            event("login: AccountLocked")
            return None  # a locked attempt does not count
        if user is not None and right and user.status is UserStatus.ACTIVE:
            pair = self.core.auth.login(identifier, password)
            event(f"login: succeeded after {user.throttle.failures} failures")
            user.throttle = Throttle()
            self.families += 1
            self.issue_pair(pair, user, self.families, self.now + REFRESH_TTL)
            return pair
        with pytest.raises(InvalidCredentials):
            self.core.auth.login(identifier, password)
        self.count_failure(throttle)
        return None

    def count_failure(self, throttle: Throttle) -> None:
        throttle.failures += 1
        locked_for = lockout_for(throttle.failures)
        throttle.locked_until = None if locked_for is None else self.now + locked_for
        event(
            "login: InvalidCredentials"
            + ("" if locked_for is None else f", now locked for {locked_for.seconds} s")
        )

    @rule(target=pairs, pair=pairs)
    def refresh(self, pair: TokenPair) -> object:
        record = self.refresh_tokens[pair.refresh_token]
        user = self.user_by_id(record.user_id)
        revoke = False
        # The order of the checks matters: a spent token is a replay even when
        # it has also expired.
        if record.gone or record.revoked:
            ok = False
        elif record.used:
            ok, revoke = False, True  # a replay
        elif self.now >= record.expires_at:
            ok = False
        elif (
            user is None
            or user.status is not UserStatus.ACTIVE
            or user.token_version != record.token_version
        ):
            ok, revoke = False, True
        else:
            ok = True
        if not ok:
            with pytest.raises(TokenError):
                self.core.auth.refresh(pair.refresh_token)
            if revoke:
                self.revoke_family(record.family)
            event("refresh: TokenError" + (", family revoked" if revoke else ""))
            return multiple()
        assert user is not None
        new = self.core.auth.refresh(pair.refresh_token)
        event("refresh: succeeded")
        record.used = True
        self.issue_pair(new, user, record.family, record.expires_at)
        return new

    @rule(target=pairs, pair=pairs)
    def refresh_then_replay(self, pair: TokenPair) -> object:
        """Refresh, then present the same refresh token again (a replay, which revokes
        the family), then try the successor issued by the first refresh."""
        successor = self.refresh(pair)
        self.refresh(pair)
        if isinstance(successor, TokenPair):
            self.refresh(successor)
            return successor
        return multiple()

    @rule(pair=pairs, also=st.one_of(st.none(), pairs))
    def logout(self, pair: TokenPair, also: TokenPair | None) -> None:
        """Log out with a pair's access token, and maybe some pair's refresh token."""
        access = self.access[pair.access_token]
        refresh_token = None if also is None else also.refresh_token
        if not self.access_is_valid(access):
            with pytest.raises(TokenError):
                self.core.auth.logout(pair.access_token, refresh_token)
            event("logout: TokenError")
            return
        self.core.auth.logout(pair.access_token, refresh_token)
        event("logout: succeeded")
        access.logged_out = True
        self.revoke_family(access.family)  # logout ends the access token's session
        if refresh_token is not None:
            record = self.refresh_tokens[refresh_token]
            if not record.gone and record.user_id == access.user_id:
                self.revoke_family(record.family)

    @rule(email=st.sampled_from(EMAILS))
    def logout_all(self, email: str) -> None:
        user = self.users.get(key_of(email))
        if user is None:
            with pytest.raises(NotFoundError):
                self.core.auth.logout_all(SYSTEM, self.target_id(email))
            return
        self.core.auth.logout_all(SYSTEM, user.id)
        self.end_sessions(user)

    # -- time ---------------------------------------------------------------------

    @rule(seconds=st.one_of(st.integers(1, 90), st.integers(1, 20 * 60)))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule(pick=st.integers(0, 7), offset=st.sampled_from([-1, 0, 1]))
    def advance_to_an_edge(self, pick: int, offset: int) -> None:
        """Jump to just before, at or just after an instant where the model's
        answer changes: an access token's expiry (and the end of its leeway)
        or the end of a lock.  Random jumps rarely land there."""
        edges = sorted(
            {
                edge
                for record in self.access.values()
                for edge in (record.expires_at, record.expires_at + LEEWAY)
            }
            | {
                throttle.locked_until
                for throttle in [*self.unknown.values(), *(u.throttle for u in self.users.values())]
                if throttle.locked_until is not None
            }
        )
        upcoming = [edge for edge in edges if edge + timedelta(seconds=offset) > self.now]
        if upcoming:
            target = upcoming[min(pick, len(upcoming) - 1)] + timedelta(seconds=offset)
            self.clock.advance(seconds=(target - self.now).total_seconds())

    @rule(email=st.sampled_from(EMAILS))
    def deactivate_and_reactivate(self, email: str) -> None:
        """An account switched off and on again: its old sessions stay dead."""
        self.set_status(email, UserStatus.INACTIVE)
        self.set_status(email, UserStatus.ACTIVE)

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def access_tokens_authenticate_exactly_when_valid(self) -> None:
        for token, record in self.access.items():
            if self.access_is_valid(record):
                principal = self.core.auth.authenticate(token)
                user = self.user_by_id(record.user_id)
                assert user is not None
                assert (user.id, user.roles) == (principal.user_id, principal.roles)
            else:
                with pytest.raises(TokenError):
                    self.core.auth.authenticate(token)
                if self.now >= record.expires_at + LEEWAY:
                    event("authenticate: an expired access token refused")

    @invariant()
    def the_store_lists_the_model_users(self) -> None:
        page = self.core.users.list(SYSTEM, per_page=100)
        # Lockout state lives in login_attempts (keyed HMACs), checked through
        # the outcomes of logins above.
        actual = [(u.id, u.email, u.roles, u.status) for u in page.items]
        expected = sorted((u.id, u.email, u.roles, u.status) for u in self.users.values())
        assert expected == actual
        assert page.next_cursor is None


# Far more runs than the brief's ~25 x 30 steps: a run costs milliseconds on
# MemoryStore, and lockout escalation or a replay after a reactivation needs
# many runs to come up.  SQLite pays an fsync per commit (synchronous=FULL),
# so it gets fewer; together they stay well under 40 s.
MODEL_SETTINGS = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class MemoryFacadeMachine(FacadeMachine):
    store_kind = "memory"


class SQLiteFacadeMachine(FacadeMachine):
    store_kind = "sqlite"


TestFacadeModelOnMemory = MemoryFacadeMachine.TestCase
TestFacadeModelOnMemory.settings = MODEL_SETTINGS
TestFacadeModelOnSQLite = SQLiteFacadeMachine.TestCase
TestFacadeModelOnSQLite.settings = settings(MODEL_SETTINGS, max_examples=75)
