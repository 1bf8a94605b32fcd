"""``StoreContract``: the behaviour every :class:`usercore.ports.Store` must have.

A pytest test class.  An adapter's own test module subclasses it and says how
to make a fresh, empty store; pytest then runs every test below against it::

    import uuid

    import pytest

    from usercore.testing import StoreContract

    from myapp.storage import RedisStore


    class TestRedisStore(StoreContract):
        @pytest.fixture(autouse=True)
        def _server(self, redis_url):  # any fixture of your own
            self.url = redis_url

        def make_store(self):
            # Called once per test (and once per example in the property tests):
            # every call must return a new, empty store.
            return RedisStore(self.url, namespace=uuid.uuid4().hex)

The class relies on no fixture of its own besides ``store`` (which calls
:meth:`StoreContract.make_store` and closes the store afterwards), so it runs
in any pytest project with hypothesis installed.  usercore runs it against
:class:`~usercore.storage.MemoryStore`, :class:`~usercore.storage.SQLiteStore`
and :class:`~usercore.storage.postgres.PostgresStore`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usercore.custom_fields import CustomField
from usercore.domain import (
    ApiKey,
    OneTimeToken,
    Permission,
    RefreshToken,
    Role,
    User,
    UserStatus,
    username_key,
)
from usercore.errors import ConflictError, NotFoundError, ValidationError
from usercore.ports import LoginAttempts, Store, UnitOfWork, UserFilter
from usercore.storage._codec import search_key

__all__ = ["StoreContract"]

T = TypeVar("T")

T0 = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
EVERYONE = UserFilter()

# Text that has broken naive stores: quotes, SQL comment and statement
# separators, bidirectional overrides, LIKE wildcards, astral and joined
# emoji, control characters, and a 5,000-character string.  (NUL and lone
# surrogates are not storable text: see test_unstorable_text_is_refused.)
HOSTILE_STRINGS = (
    "O'Brien",
    'say "hello"',
    "x'); DROP TABLE users; --",
    "-- not a comment",
    "/* not a comment */",
    "\u202eevil\u202c",
    "\u200f\u05e9\u05dc\u05d5\u05dd",
    "%_\\",
    "\U0001f600 \U0001f3f3\ufe0f\u200d\U0001f308",
    "tab\tnewline\ncarriage\r",
    "x" * 5000,
)

# Each example is independent of the store's earlier contents, so sharing the
# function-scoped store across examples is sound; and one test method running
# under several subclasses (one per adapter) is the point of the class.
_PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
        HealthCheck.too_slow,
    ],
)

# Any text a store holds: every code point but NUL and lone surrogates (which
# are not Unicode scalar values and cannot be encoded).
_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60)
UNSTORABLE = ("nul\x00inside", "lone \ud800 surrogate", "\x00")
# Few characters, so that needles hit: quotes (FTS5 phrase syntax), LIKE
# wildcards, a space, letters whose case folding changes length ("ß" -> "ss").
_search_text = st.text(st.sampled_from("aAbB\"'%_ *éÉßs.@"), max_size=8)

_aware_datetimes = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


def present(value: T | None) -> T:
    """``value``, asserting that a lookup found something."""
    assert value is not None, "expected a stored record, found None"
    return value


def a_user(email: str | None, **fields: Any) -> User:
    """A new user (``id`` is assigned by the store)."""
    fields.setdefault("created_at", T0)
    fields.setdefault("updated_at", T0)
    return User(id=0, email=email, **fields)


def email_key_of(user: User) -> str:
    """The email key of a user that has an email."""
    assert user.email_key is not None
    return user.email_key


def a_refresh_token(token_hash: bytes, user_id: int, **fields: Any) -> RefreshToken:
    fields.setdefault("family_id", "family-1")
    fields.setdefault("token_version", 0)
    fields.setdefault("created_at", T0)
    fields.setdefault("expires_at", T0 + HOUR)
    return RefreshToken(token_hash=token_hash, user_id=user_id, **fields)


def an_api_key(prefix: str, user_id: int, **fields: Any) -> ApiKey:
    fields.setdefault("name", "ci")
    fields.setdefault("created_at", T0)
    fields.setdefault("secret_hash", b"\x01" * 32)
    return ApiKey(id=0, user_id=user_id, prefix=prefix, **fields)


def a_one_time_token(token_hash: bytes, user_id: int, **fields: Any) -> OneTimeToken:
    fields.setdefault("purpose", "password_reset")
    fields.setdefault("binding", "binding")
    fields.setdefault("created_at", T0)
    fields.setdefault("expires_at", T0 + HOUR)
    return OneTimeToken(token_hash=token_hash, user_id=user_id, **fields)


_A_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
_SERIAL = itertools.count()  # unique emails across property-test examples


class Rollback(Exception):
    """Raised by tests to make a transaction roll back."""


def fail_after(store: Store, action: Callable[[UnitOfWork], object]) -> None:
    """Run ``action`` in a transaction, then raise ``Rollback`` inside it."""
    with store.transaction() as tx:
        action(tx)
        raise Rollback


class StoreContract:
    """Tests every :class:`usercore.ports.Store` must pass.

    Subclass it in a test module whose name pytest collects (``Test...``) and
    override :meth:`make_store`.  Each test gets a store from the ``store``
    fixture; the property-based ones make more stores of their own, so
    ``make_store`` must return a new, empty store on every call.
    """

    def make_store(self) -> Store:
        """Return a new, empty store; override this."""
        raise NotImplementedError("override make_store() to return a new, empty store")

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    # -- helpers ---------------------------------------------------------------

    def add_user(self, store: Store, email: str | None, **fields: Any) -> User:
        with store.transaction() as tx:
            return tx.users.add(a_user(email, **fields))

    def read(self, store: Store, action: Callable[[UnitOfWork], Any]) -> Any:
        with store.transaction(readonly=True) as tx:
            return action(tx)

    def all_users(self, store: Store, filter: UserFilter = EVERYONE) -> list[User]:
        with store.transaction(readonly=True) as tx:
            return tx.users.list(after=None, limit=10_000, filter=filter)

    # -- users: add and get -----------------------------------------------

    def test_add_assigns_a_new_id_and_version_one(self, store: Store) -> None:
        first = self.add_user(store, "ada@example.com")
        second = self.add_user(store, "grace@example.com")
        assert first.id >= 1
        assert second.id > first.id
        assert (first.version, second.version) == (1, 1)

    def test_get_returns_every_field_as_stored(self, store: Store) -> None:
        user = self.add_user(
            store,
            "Ada@Example.com",
            username="Ada",
            name="Ada Lovelace",
            roles={"admin", "user"},
            status=UserStatus.INACTIVE,
            email_verified=True,
            last_login_at=T0 + HOUR,
            password_hash=_A_HASH,
            failed_logins=3,
            locked_until=T0 + 2 * HOUR,
            token_version=7,
        )
        assert user == self.read(store, lambda tx: tx.users.get(user.id))
        stored = self.read(store, lambda tx: tx.users.get(user.id))
        assert stored.password_hash == _A_HASH
        assert (
            stored.failed_logins,
            stored.locked_until,
            stored.token_version,
        ) == (3, T0 + 2 * HOUR, 7)

    def test_missing_users_read_as_none(self, store: Store) -> None:
        with store.transaction(readonly=True) as tx:
            assert tx.users.get(12345) is None
            assert tx.users.get_by_email("nobody@example.com") is None
            assert tx.users.get_by_username("nobody") is None

    def test_lookup_by_email_key_ignores_case(self, store: Store) -> None:
        user = self.add_user(store, "Ada.Lovelace@Example.COM")
        found = self.read(store, lambda tx: tx.users.get_by_email(email_key_of(user)))
        assert user == found
        assert found.email == "Ada.Lovelace@Example.COM"

    def test_lookup_by_username_key_ignores_case(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", username="AdaL")
        assert user == self.read(store, lambda tx: tx.users.get_by_username("adal"))

    def test_datetimes_round_trip_to_equal_aware_utc_values(self, store: Store) -> None:
        plus_two = timezone(timedelta(hours=2))
        user = self.add_user(
            store,
            "time@example.com",
            created_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=plus_two),
            updated_at=datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc),
        )
        stored = self.read(store, lambda tx: tx.users.get(user.id))
        assert datetime(2024, 2, 29, 21, 59, 59, 999999, tzinfo=timezone.utc) == stored.created_at
        assert timezone.utc == stored.created_at.tzinfo == stored.updated_at.tzinfo
        assert datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=timezone.utc) == stored.updated_at

    @_PROPERTY_SETTINGS
    @given(moments=st.lists(_aware_datetimes, min_size=4, max_size=4))
    def test_any_aware_datetime_round_trips_exactly(
        self, store: Store, moments: list[datetime]
    ) -> None:
        user = self.add_user(
            store,
            f"{next(_SERIAL)}@example.com",
            created_at=moments[0],
            updated_at=moments[1],
            last_login_at=moments[2],
            locked_until=moments[3],
        )
        stored = self.read(store, lambda tx: tx.users.get(user.id))
        back = [stored.created_at, stored.updated_at, stored.last_login_at, stored.locked_until]
        assert moments == back
        assert [timezone.utc] * 4 == [moment.tzinfo for moment in back]

    def test_naive_datetimes_are_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="naive"), store.transaction() as tx:
            tx.users.add(a_user("naive@example.com", created_at=datetime(2024, 1, 1)))
        assert self.all_users(store) == []

    # -- users: uniqueness --------------------------------------------------

    def test_an_email_differing_only_in_case_is_a_conflict_on_email(self, store: Store) -> None:
        self.add_user(store, "ada@example.com")
        with pytest.raises(ConflictError) as caught, store.transaction() as tx:
            tx.users.add(a_user("ADA@EXAMPLE.COM"))
        assert caught.value.field == "email"
        assert [user.email for user in self.all_users(store)] == ["ada@example.com"]

    def test_case_folding_makes_sharp_s_and_ss_the_same_email(self, store: Store) -> None:
        self.add_user(store, "straße@example.com")
        with pytest.raises(ConflictError) as caught, store.transaction() as tx:
            tx.users.add(a_user("STRASSE@example.com"))
        assert caught.value.field == "email"

    def test_a_username_differing_only_in_case_is_a_conflict_on_username(
        self, store: Store
    ) -> None:
        self.add_user(store, "ada@example.com", username="Ada")
        with pytest.raises(ConflictError) as caught, store.transaction() as tx:
            tx.users.add(a_user("other@example.com", username="aDA"))
        assert caught.value.field == "username"

    def test_any_number_of_users_may_have_no_username(self, store: Store) -> None:
        for number in range(3):
            self.add_user(store, f"user{number}@example.com", username=None)
        assert self.read(store, lambda tx: tx.users.count(filter=EVERYONE)) == 3

    def test_a_conflict_leaves_the_transaction_usable(self, store: Store) -> None:
        self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            with pytest.raises(ConflictError):
                tx.users.add(a_user("Ada@example.com"))
            tx.users.add(a_user("grace@example.com"))
        emails = [email_key_of(user) for user in self.all_users(store)]
        assert emails == ["ada@example.com", "grace@example.com"]

    # -- users: update and delete -------------------------------------------

    def test_update_writes_every_field_and_bumps_the_version(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", username="ada", roles={"user"})
        changed = attrs.evolve(
            user,
            email="Ada@Lovelace.org",
            username="countess",
            name="Ada, Countess of Lovelace",
            roles={"admin"},
            status=UserStatus.INACTIVE,
            email_verified=True,
            updated_at=T0 + HOUR,
            last_login_at=T0 + HOUR,
            password_hash="hash",  # noqa: S106
            failed_logins=2,
            locked_until=T0 + 2 * HOUR,
            token_version=4,
        )
        with store.transaction() as tx:
            returned = tx.users.update(changed)
        assert attrs.evolve(changed, version=2) == returned
        with store.transaction(readonly=True) as tx:
            assert returned == tx.users.get(user.id)
            assert returned == tx.users.get_by_email("ada@lovelace.org")
            assert returned == tx.users.get_by_username("countess")
            assert tx.users.get_by_email("ada@example.com") is None
            assert tx.users.get_by_username("ada") is None
            assert tx.users.count_with_role("user") == 0
            assert [returned] == tx.users.list(
                after=None, limit=10, filter=UserFilter(role="admin")
            )

    def test_an_old_email_is_free_once_a_user_changes_it(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", username="ada")
        with store.transaction() as tx:
            tx.users.update(attrs.evolve(user, email="new@example.com", username=None))
        other = self.add_user(store, "ADA@example.com", username="ADA")
        assert other.id > user.id

    def test_an_update_may_change_the_case_of_its_own_email(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", username="ada")
        with store.transaction() as tx:
            updated = tx.users.update(attrs.evolve(user, email="ADA@example.com", username="Ada"))
        assert updated.email == "ADA@example.com"

    def test_an_update_with_a_stale_version_is_a_conflict_on_version(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            tx.users.update(attrs.evolve(user, name="first"))
        with pytest.raises(ConflictError) as caught, store.transaction() as tx:
            tx.users.update(attrs.evolve(user, name="second"))
        assert caught.value.field == "version"
        stored = self.read(store, lambda tx: tx.users.get(user.id))
        assert (stored.name, stored.version) == ("first", 2)

    def test_an_update_taking_another_users_email_is_a_conflict(self, store: Store) -> None:
        self.add_user(store, "ada@example.com", username="ada")
        grace = self.add_user(store, "grace@example.com", username="grace")
        for changed, field in (
            (attrs.evolve(grace, email="Ada@example.com"), "email"),
            (attrs.evolve(grace, username="ADA"), "username"),
        ):
            with pytest.raises(ConflictError) as caught, store.transaction() as tx:
                tx.users.update(changed)
            assert field == caught.value.field
        assert grace == self.read(store, lambda tx: tx.users.get(grace.id))

    def test_an_update_of_a_missing_user_is_not_found(self, store: Store) -> None:
        ghost = attrs.evolve(a_user("ghost@example.com"), id=999, version=1)
        with pytest.raises(NotFoundError), store.transaction() as tx:
            tx.users.update(ghost)

    def test_users_without_an_email_are_found_by_username(self, store: Store) -> None:
        # Accounts identified by their username alone: no email, so no email key,
        # and any number of them (a missing key is not a duplicate).
        ada = self.add_user(store, None, username="ada")
        grace = self.add_user(store, None, username="grace")
        assert (ada.email, ada.email_key) == (None, None)
        assert self.read(store, lambda tx: tx.users.get_by_username("ada")) == ada
        with store.transaction() as tx:
            saved = tx.users.update(attrs.evolve(grace, email="grace@example.com"))
            assert tx.users.get_by_email("grace@example.com") == saved
            cleared = tx.users.update(attrs.evolve(saved, email=None))
            assert tx.users.get_by_email("grace@example.com") is None
            assert cleared.email is None
        assert self.add_user(store, "grace@example.com").id > grace.id
        assert [user.username for user in self.all_users(store, UserFilter(search="ad"))] == ["ada"]
        with store.transaction() as tx:
            assert tx.users.delete(ada.id) is True
        assert self.read(store, lambda tx: tx.users.get_by_username("ada")) is None

    def test_delete_reports_whether_the_user_existed(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", username="ada")
        with store.transaction() as tx:
            assert tx.users.delete(user.id) is True
            assert tx.users.delete(user.id) is False
            assert tx.users.get(user.id) is None
            assert tx.users.get_by_email(email_key_of(user)) is None
        self.add_user(store, "ada@example.com", username="ada")  # the keys are free again

    def test_deleting_a_user_deletes_its_tokens_and_keys(self, store: Store) -> None:
        ada = self.add_user(store, "ada@example.com")
        grace = self.add_user(store, "grace@example.com")
        with store.transaction() as tx:
            for owner in (ada, grace):
                tag = owner.id.to_bytes(4, "big")
                tx.refresh_tokens.add(a_refresh_token(b"r" + tag, owner.id))
                tx.one_time_tokens.add(a_one_time_token(b"o" + tag, owner.id))
                tx.api_keys.add(an_api_key(f"p{owner.id}", owner.id))
        with store.transaction() as tx:
            tx.users.delete(ada.id)
        with store.transaction(readonly=True) as tx:
            ada_tag, grace_tag = ada.id.to_bytes(4, "big"), grace.id.to_bytes(4, "big")
            assert tx.refresh_tokens.get(b"r" + ada_tag) is None
            assert tx.one_time_tokens.get(b"o" + ada_tag) is None
            assert tx.api_keys.list_for_user(ada.id) == []
            assert tx.api_keys.get_by_prefix(f"p{ada.id}") is None
            assert tx.refresh_tokens.get(b"r" + grace_tag) is not None
            assert tx.one_time_tokens.get(b"o" + grace_tag) is not None
            assert len(tx.api_keys.list_for_user(grace.id)) == 1

    def test_ids_are_never_reused(self, store: Store) -> None:
        first = self.add_user(store, "first@example.com")
        second = self.add_user(store, "second@example.com")
        with store.transaction() as tx:
            tx.users.delete(second.id)
            tx.users.delete(first.id)
        third = self.add_user(store, "third@example.com")
        assert third.id > second.id

    # -- users: bulk add -----------------------------------------------------

    def test_add_many_inserts_every_user_with_increasing_ids(self, store: Store) -> None:
        self.add_user(store, "existing@example.com")
        batch = [a_user(f"bulk{n}@example.com", roles={"user"}) for n in range(2500)]
        with store.transaction() as tx:
            added = tx.users.add_many(batch)
        ids = [user.id for user in added]
        assert ids == sorted(set(ids))
        assert [user.email for user in batch] == [user.email for user in added]
        assert {1} == {user.version for user in added}
        with store.transaction(readonly=True) as tx:
            assert tx.users.count(filter=EVERYONE) == 2501
            assert tx.users.count_with_role("user") == 2500
            assert added[1234] == tx.users.get_by_email("bulk1234@example.com")
        assert added[-1].id < self.add_user(store, "after@example.com").id

    def test_add_many_with_a_duplicate_inserts_nothing(self, store: Store) -> None:
        self.add_user(store, "taken@example.com")
        batches = (
            [a_user("new1@example.com"), a_user("TAKEN@example.com")],
            [a_user("new1@example.com"), a_user("NEW1@example.com")],
        )
        for batch in batches:
            with store.transaction() as tx:
                with pytest.raises(ConflictError) as caught:
                    tx.users.add_many(batch)
                assert caught.value.field == "email"
                assert tx.users.count(filter=EVERYONE) == 1
        assert [user.email for user in self.all_users(store)] == ["taken@example.com"]

    def test_add_many_of_nothing_adds_nothing(self, store: Store) -> None:
        with store.transaction() as tx:
            assert tx.users.add_many([]) == []

    def test_taken_keys_names_exactly_the_keys_stored_users_hold(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.users.add_many(
                [a_user(f"held{n}@example.com", username=f"held{n}") for n in range(600)]
                + [a_user(None, username="nomail")]
            )
        emails = [f"held{n}@example.com" for n in range(0, 1200, 2)] + ["a\x00b", "nomail"]
        usernames = [f"held{n}" for n in range(1, 1200, 2)] + ["nomail", "held0@example.com"]
        with store.transaction(readonly=True) as tx:
            emails_taken, usernames_taken = tx.users.taken_keys(emails, usernames)
            assert tx.users.taken_keys([], []) == (set(), set())
        assert emails_taken == {f"held{n}@example.com" for n in range(0, 600, 2)}
        assert usernames_taken == {f"held{n}" for n in range(1, 600, 2)} | {"nomail"}

    # -- users: listing ---------------------------------------------------

    def test_list_walks_users_in_id_order_by_keyset_cursor(self, store: Store) -> None:
        with store.transaction() as tx:
            added = tx.users.add_many([a_user(f"u{n}@example.com") for n in range(10)])
        pages: list[list[int]] = []
        after = None
        with store.transaction(readonly=True) as tx:
            while page := tx.users.list(after=after, limit=4, filter=EVERYONE):
                pages.append([user.id for user in page])
                after = page[-1].id
        ids = [user.id for user in added]
        assert [ids[0:4], ids[4:8], ids[8:10]] == pages

    def test_offset_skips_users_for_page_numbers(self, store: Store) -> None:
        with store.transaction() as tx:
            added = tx.users.add_many(
                [a_user(f"u{n}@example.com", roles={"odd"} if n % 2 else set()) for n in range(10)]
            )
        with store.transaction(readonly=True) as tx:
            page_three = tx.users.list(after=None, limit=3, filter=EVERYONE, offset=6)
            odd_page_two = tx.users.list(
                after=None, limit=2, filter=UserFilter(role="odd"), offset=2
            )
            past_the_end = tx.users.list(after=None, limit=3, filter=EVERYONE, offset=10)
            after_and_offset = tx.users.list(after=added[1].id, limit=2, filter=EVERYONE, offset=1)
        assert added[6:9] == page_three
        assert [added[5], added[7]] == odd_page_two
        assert past_the_end == []
        assert added[3:5] == after_and_offset

    def test_negative_limit_or_offset_is_refused(self, store: Store) -> None:
        with store.transaction(readonly=True) as tx:
            with pytest.raises(ValueError, match="negative"):
                tx.users.list(after=None, limit=-1, filter=EVERYONE)
            with pytest.raises(ValueError, match="negative"):
                tx.users.list(after=None, limit=1, filter=EVERYONE, offset=-1)
            assert tx.users.list(after=None, limit=0, filter=EVERYONE) == []

    def test_filters_by_role_status_and_search_combine(self, store: Store) -> None:
        with store.transaction() as tx:
            ada, grace, alan, linus = tx.users.add_many(
                [
                    a_user("ada@example.com", name="Ada Lovelace", roles={"admin", "user"}),
                    a_user(
                        "grace@navy.mil",
                        username="amazing_grace",
                        roles={"user"},
                        status=UserStatus.INACTIVE,
                    ),
                    a_user("alan@example.com", name="Alan Turing", roles={"user"}),
                    a_user("linus@kernel.org", username="torvalds"),
                ]
            )
        cases = {
            UserFilter(): [ada, grace, alan, linus],
            UserFilter(role="user"): [ada, grace, alan],
            UserFilter(role="admin"): [ada],
            UserFilter(role="nobody"): [],
            UserFilter(status=UserStatus.INACTIVE): [grace],
            UserFilter(status=UserStatus.ACTIVE, role="user"): [ada, alan],
            UserFilter(search="EXAMPLE"): [ada, alan],
            UserFilter(search="grace"): [grace],
            UserFilter(search="TURING"): [alan],
            UserFilter(search="torv"): [linus],
            UserFilter(search="a", role="user", status=UserStatus.ACTIVE): [ada, alan],
            UserFilter(search="nothing matches"): [],
        }
        with store.transaction(readonly=True) as tx:
            for query, expected in cases.items():
                assert expected == tx.users.list(after=None, limit=10, filter=query), query
                assert len(expected) == tx.users.count(filter=query), query
                later = [user for user in expected if user.id > ada.id]
                assert later == tx.users.list(after=ada.id, limit=10, filter=query), query

    def test_search_matches_case_insensitively_across_scripts(self, store: Store) -> None:
        user = self.add_user(store, "ömer@example.com", username="Ωmega", name="Straße Δέλτα")
        with store.transaction(readonly=True) as tx:
            for needle in ("ÖMER", "ωMEGA", "STRASSE", "δέλτα", "e δ"):
                found = tx.users.list(after=None, limit=10, filter=UserFilter(search=needle))
                assert [user] == found, needle

    @_PROPERTY_SETTINGS
    @given(
        people=st.lists(
            st.tuples(_search_text, st.none() | _search_text, st.none() | _search_text),
            min_size=1,
            max_size=6,
        ),
        needles=st.lists(_search_text, min_size=1, max_size=4),
        cut=st.tuples(st.integers(0, 8), st.integers(1, 6)),
    )
    def test_search_finds_exactly_the_users_whose_keys_contain_the_needle(
        self,
        store: Store,
        people: list[tuple[str, str | None, str | None]],
        needles: list[str],
        cut: tuple[int, int],
    ) -> None:
        """Whatever index a store searches with (trigrams, scans), a search
        matches exactly the users whose case-folded email, username or name
        contains the case-folded needle, and counts them."""
        serial = next(_SERIAL)
        with store.transaction() as tx:
            added = tx.users.add_many(
                [
                    a_user(
                        f"{local}{serial}.{index}@x.example",
                        username=None if username is None else f"{username}{serial}.{index}",
                        name=name,
                    )
                    for index, (local, username, name) in enumerate(people)
                ]
            )
        start, length = cut
        # A needle cut from a stored key hits; the random ones mostly miss.
        needles.append((added[0].email_key or "")[start : start + length])
        everyone = self.all_users(store)
        for needle in needles:
            folded = search_key(needle)
            expected = [
                user.id
                for user in everyone
                if not folded
                or (user.email_key is not None and folded in user.email_key)
                or (user.username_key is not None and folded in user.username_key)
                or (user.name is not None and folded in search_key(user.name))
            ]
            query = UserFilter(search=needle)
            assert expected == [user.id for user in self.all_users(store, query)], needle
            with store.transaction(readonly=True) as tx:
                assert len(expected) == tx.users.count(filter=query), needle
        with store.transaction() as tx:  # renaming keeps the index in step
            renamed = tx.users.update(
                attrs.evolve(added[0], email=f"renamed{serial}@x.example", name="zzz")
            )
        gone = self.all_users(store, UserFilter(search=added[0].email_key))
        assert renamed.id not in [user.id for user in gone]
        found = self.all_users(store, UserFilter(search=f"RENAMED{serial}@"))
        assert [renamed.id] == [user.id for user in found]

    @_PROPERTY_SETTINGS
    @given(
        steps=st.lists(
            st.tuples(
                st.sampled_from(["add", "status", "roles", "delete", "remove_role"]),
                st.integers(0, 5),
                st.frozensets(st.sampled_from(["admin", "user", "viewer"]), max_size=2),
                st.sampled_from(list(UserStatus)),
            ),
            max_size=12,
        )
    )
    def test_counts_agree_with_the_listing_after_any_writes(
        self, store: Store, steps: list[tuple[str, int, frozenset[str], UserStatus]]
    ) -> None:
        """Whatever keeps the counts (counters, scans), ``count`` equals the
        number of users a listing with the same filter returns."""
        for action, position, roles, status in steps:
            with store.transaction() as tx:
                users = tx.users.list(after=None, limit=10_000, filter=EVERYONE)
                victim = users[position % len(users)] if users else None
                if action == "add" or victim is None:
                    email = f"{next(_SERIAL)}@count.example"
                    tx.users.add(a_user(email, roles=roles, status=status))
                elif action == "status":
                    tx.users.update(attrs.evolve(victim, status=status))
                elif action == "roles":
                    tx.users.update(attrs.evolve(victim, roles=roles))
                elif action == "delete":
                    tx.users.delete(victim.id)
                else:
                    tx.users.remove_role(min(roles, default="admin"))
        with store.transaction(readonly=True) as tx:
            for role in (None, "admin", "user", "viewer", "nobody"):
                for state in (None, *UserStatus):
                    query = UserFilter(role=role, status=state)
                    listed = tx.users.list(after=None, limit=10_000, filter=query)
                    assert len(listed) == tx.users.count(filter=query), query
                    if state is None and role is not None:
                        assert len(listed) == tx.users.count_with_role(role), role

    def test_get_for_token_reads_the_user_and_whether_the_jti_is_revoked(
        self, store: Store
    ) -> None:
        user = self.add_user(store, "ada@example.com", roles={"admin"})
        with store.transaction() as tx:
            tx.revoked_tokens.add("revoked-jti", T0 + HOUR)
        with store.transaction(readonly=True) as tx:
            assert (user, False) == tx.users.get_for_token(user.id, "live-jti")
            assert (user, True) == tx.users.get_for_token(user.id, "revoked-jti")
            assert tx.users.get_for_token(user.id + 1, "revoked-jti") == (None, True)
            assert tx.users.get_for_token(user.id + 1, "live-jti") == (None, False)
            assert (user, False) == tx.users.get_for_token(user.id, "nul\x00jti")

    def test_a_single_read_reads_like_a_read_only_transaction(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", username="ada")
        with store.transaction() as tx:
            tx.revoked_tokens.add("revoked-jti", T0 + HOUR)
        reads: list[Callable[[UnitOfWork], Any]] = [
            lambda tx: tx.users.get(user.id),
            lambda tx: tx.users.get_by_email(email_key_of(user)),
            lambda tx: tx.users.get_by_username("ada"),
            lambda tx: tx.users.get_for_token(user.id, "revoked-jti"),
            lambda tx: tx.users.get_for_token(user.id, "nul\x00jti"),
            lambda tx: tx.users.get(user.id + 1),
        ]
        for read in reads:
            with store.transaction(single_read=True) as tx:
                single = read(tx)
            assert self.read(store, read) == single
        assert single is None

    def test_a_single_read_cannot_write_or_nest(self, store: Store) -> None:
        with store.transaction(single_read=True) as tx, pytest.raises(RuntimeError):
            tx.users.add(a_user("ada@example.com"))
        with (
            store.transaction(single_read=True),
            pytest.raises(RuntimeError),
            store.transaction(readonly=True),
        ):
            pass  # pragma: no cover - refused on entry
        assert self.all_users(store) == []

    def test_a_single_read_inside_a_transaction_reads_in_it(self, store: Store) -> None:
        with store.transaction() as tx:
            user = tx.users.add(a_user("ada@example.com"))
            with store.transaction(single_read=True) as inner:
                assert user == inner.users.get(user.id)
            tx.users.add(a_user("grace@example.com"))  # the outer one still writes
        assert len(self.all_users(store)) == 2

    @pytest.mark.parametrize("needle", ["%", "_", "\\", "%%", "a%", "_b"])
    def test_search_takes_wildcards_literally(self, store: Store, needle: str) -> None:
        with store.transaction() as tx:
            tx.users.add_many(
                [
                    a_user("plain@example.com", name="ab"),
                    a_user("other@example.com", name="a" + needle + "b"),
                ]
            )
        found = self.all_users(store, UserFilter(search=needle))
        assert ["a" + needle + "b"] == [user.name for user in found]

    @_PROPERTY_SETTINGS
    @given(
        page_size=st.integers(1, 5),
        changes=st.lists(
            st.tuples(st.integers(0, 3), st.lists(st.integers(0, 40), max_size=4)), max_size=12
        ),
    )
    def test_a_cursor_walk_visits_every_lasting_user_once_under_inserts_and_deletes(
        self, page_size: int, changes: list[tuple[int, list[int]]]
    ) -> None:
        """Between pages, other writers insert users and delete users at random
        positions; the walk still sees each user that lived throughout exactly once."""
        store = self.make_store()
        try:
            with store.transaction() as tx:
                tx.users.add_many([a_user(f"{next(_SERIAL)}@x.example") for _ in range(20)])
            initial = {user.id for user in self.all_users(store)}
            ever: set[int] = set(initial)
            deleted: set[int] = set()
            seen: list[int] = []
            pending = iter(changes)
            after = None
            while True:
                with store.transaction(readonly=True) as tx:
                    page = tx.users.list(after=after, limit=page_size, filter=EVERYONE)
                if not page:
                    break
                seen += [user.id for user in page]
                after = page[-1].id
                inserts, deletions = next(pending, (0, []))
                with store.transaction() as tx:
                    for _ in range(inserts):
                        ever.add(tx.users.add(a_user(f"{next(_SERIAL)}@x.example")).id)
                    for position in deletions:
                        for victim in tx.users.list(
                            after=None, limit=1, filter=EVERYONE, offset=position
                        ):
                            tx.users.delete(victim.id)
                            deleted.add(victim.id)
            assert seen == sorted(set(seen)), "a user was visited twice, or out of order"
            assert initial - deleted <= set(seen), "a user that lived throughout was skipped"
            assert set(seen) <= ever
        finally:
            store.close()

    # -- users: roles -----------------------------------------------------

    def test_count_with_role_and_remove_role(self, store: Store) -> None:
        with store.transaction() as tx:
            ada, grace, alan = tx.users.add_many(
                [
                    a_user("ada@example.com", roles={"editor", "user"}),
                    a_user("grace@example.com", roles={"editor"}),
                    a_user("alan@example.com", roles={"user"}),
                ]
            )
        with store.transaction() as tx:
            assert tx.users.count_with_role("editor") == 2
            assert tx.users.remove_role("editor") == 2
            assert tx.users.remove_role("editor") == 0
        with store.transaction(readonly=True) as tx:
            assert tx.users.count_with_role("editor") == 0
            assert tx.users.count_with_role("user") == 2
            stored_ada = present(tx.users.get(ada.id))
            assert frozenset({"user"}) == stored_ada.roles
            assert frozenset() == present(tx.users.get(grace.id)).roles
            assert stored_ada.version == 2, "remove_role bumps the version"
            assert alan == tx.users.get(alan.id)
            assert tx.users.list(after=None, limit=10, filter=UserFilter(role="editor")) == []

    # -- hostile input ------------------------------------------------------

    @pytest.mark.parametrize("text", HOSTILE_STRINGS, ids=lambda text: repr(text[:20]))
    def test_hostile_strings_are_stored_verbatim(self, store: Store, text: str) -> None:
        user = self.add_user(store, f"{text}@example.com", username=text, name=text, roles={text})
        with store.transaction() as tx:
            tx.roles.add(Role(name=text, permissions={text}, inherits={text}, description=text))
            tx.permissions.add(Permission(name=text, description=text, created_at=T0))
            tx.meta.set(text, text)
            tx.revoked_tokens.add(text, T0)
            key = tx.api_keys.add(an_api_key(text, user.id, name=text, scopes={text}))
        with store.transaction(readonly=True) as tx:
            assert user == tx.users.get_by_email(email_key_of(user))
            assert user == tx.users.get_by_username(username_key(text))
            assert f"{text}@example.com" == present(tx.users.get(user.id)).email
            assert [user] == tx.users.list(after=None, limit=5, filter=UserFilter(role=text))
            assert [user] == tx.users.list(after=None, limit=5, filter=UserFilter(search=text))
            assert Role(name=text, permissions={text}, inherits={text}, description=text) == (
                tx.roles.get(text)
            )
            assert Permission(name=text, description=text) == tx.permissions.get(text)
            assert text == tx.meta.get(text)
            assert tx.revoked_tokens.is_revoked(text)
            assert key == tx.api_keys.get_by_prefix(text)
            assert tx.users.count(filter=EVERYONE) == 1

    def test_every_record_can_be_listed(self, store: Store) -> None:
        """The listings a backup, an export or a full comparison reads."""
        ada = self.add_user(store, "ada@example.com")
        grace = self.add_user(store, "grace@example.com")
        later = a_refresh_token(b"b" * 32, ada.id, created_at=T0 + HOUR)
        early = a_refresh_token(b"c" * 32, ada.id)
        first = a_refresh_token(b"a" * 32, ada.id)
        reset = a_one_time_token(b"r" * 32, ada.id)
        locked = LoginAttempts(key="k2", failures=5, locked_until=T0 + HOUR, updated_at=T0)
        counted = LoginAttempts(key="k1", failures=1, locked_until=None, updated_at=T0)
        with store.transaction() as tx:
            for token in (later, early, first):
                tx.refresh_tokens.add(token)
            tx.refresh_tokens.add(a_refresh_token(b"g" * 32, grace.id))
            tx.one_time_tokens.add(reset)
            tx.revoked_tokens.add("j2", T0)
            tx.revoked_tokens.add("j1", T0 + HOUR)
            tx.login_attempts.put(locked)
            tx.login_attempts.put(counted)
            tx.meta.set("z", "last")
            tx.meta.set("a", "first")
        with store.transaction(readonly=True) as tx:
            assert [first, early, later] == tx.refresh_tokens.list_for_user(ada.id)
            assert [reset] == tx.one_time_tokens.list_for_user(ada.id)
            assert tx.one_time_tokens.list_for_user(grace.id) == []
            assert [revoked.jti for revoked in tx.revoked_tokens.list()] == ["j1", "j2"]
            assert tx.revoked_tokens.list()[0].expires_at == T0 + HOUR
            assert [counted, locked] == tx.login_attempts.list()
            items = tx.meta.items()
            assert (items["a"], items["z"]) == ("first", "last")
            assert list(items) == sorted(items)

    @pytest.mark.parametrize("text", UNSTORABLE, ids=repr)
    def test_unstorable_text_is_refused_and_found_nowhere(self, store: Store, text: str) -> None:
        """The ports promise valid Unicode without NUL: every write of other text
        raises ``ValidationError`` naming the field and changes nothing; every
        lookup by it finds nothing (and never raises)."""
        user = self.add_user(store, "ada@example.com")
        writes: list[tuple[str, Callable[[UnitOfWork], Any]]] = [
            ("email", lambda tx: tx.users.add(a_user(f"{text}@example.com"))),
            ("name", lambda tx: tx.users.add_many([a_user("x@example.com", name=text)])),
            ("roles", lambda tx: tx.users.update(attrs.evolve(user, roles={text}))),
            ("username", lambda tx: tx.users.update(attrs.evolve(user, username=text))),
            ("description", lambda tx: tx.roles.add(Role(name="r", description=text))),
            ("permissions", lambda tx: tx.roles.add(Role(name="r", permissions={text}))),
            (
                "name",
                lambda tx: tx.permissions.add(Permission(name=text, created_at=T0)),
            ),
            (
                "description",
                lambda tx: tx.permissions.add(
                    Permission(name="p:q", description=text, created_at=T0)
                ),
            ),
            ("jti", lambda tx: tx.revoked_tokens.add(text, T0)),
            ("prefix", lambda tx: tx.api_keys.add(an_api_key(text, user.id))),
            ("scopes", lambda tx: tx.api_keys.add(an_api_key("p", user.id, scopes={text}))),
            (
                "family_id",
                lambda tx: tx.refresh_tokens.add(
                    a_refresh_token(b"h" * 32, user.id, family_id=text)
                ),
            ),
            (
                "binding",
                lambda tx: tx.one_time_tokens.add(
                    a_one_time_token(b"o" * 32, user.id, binding=text)
                ),
            ),
            (
                "key",
                lambda tx: tx.login_attempts.put(
                    LoginAttempts(key=text, failures=1, locked_until=None, updated_at=T0)
                ),
            ),
            ("value", lambda tx: tx.meta.set("k", text)),
        ]
        for field, write in writes:
            with store.transaction() as tx:
                with pytest.raises(ValidationError) as caught:
                    write(tx)
                assert field in caught.value.errors, field
        with store.transaction(readonly=True) as tx:
            assert [user] == tx.users.list(after=None, limit=10, filter=EVERYONE)
            assert tx.users.get_by_email(text) is None
            assert tx.users.get_by_username(text) is None
            assert tx.users.list(after=None, limit=5, filter=UserFilter(search=text)) == []
            assert tx.users.list(after=None, limit=5, filter=UserFilter(role=text)) == []
            assert tx.users.count_with_role(text) == 0
            assert tx.roles.get(text) is None
            assert tx.roles.list() == []
            assert tx.permissions.get(text) is None
            assert tx.permissions.list() == []
            assert not tx.revoked_tokens.is_revoked(text)
            assert tx.api_keys.get_by_prefix(text) is None
            assert tx.login_attempts.get(text) is None
            assert tx.meta.get(text) is None
            assert tx.meta.get("k") is None
        with store.transaction() as tx:
            assert tx.refresh_tokens.revoke_family(text, T0) == 0
            assert tx.one_time_tokens.delete_for_user(user.id, text) == 0
            assert tx.users.remove_role(text) == 0
            assert not tx.roles.delete(text)
            tx.login_attempts.delete(text)

    @_PROPERTY_SETTINGS
    @given(text=_text)
    def test_any_text_round_trips_verbatim(self, store: Store, text: str) -> None:
        user = self.add_user(store, f"{next(_SERIAL)}@example.com", name=text, roles={text})
        with store.transaction() as tx:
            tx.meta.set("key:" + text, text)
        with store.transaction(readonly=True) as tx:
            assert user == tx.users.get(user.id)
            assert text == present(tx.users.get(user.id)).name
            assert text == tx.meta.get("key:" + text)
            assert user in tx.users.list(after=None, limit=1000, filter=UserFilter(role=text))

    # -- roles ----------------------------------------------------------------

    def test_roles_are_added_read_and_listed_by_name(self, store: Store) -> None:
        editor = Role(
            name="editor",
            permissions={"posts:write", "posts:read"},
            inherits={"viewer"},
            description="Writes posts",
        )
        viewer = Role(name="viewer", permissions={"posts:read"})
        with store.transaction() as tx:
            assert viewer == tx.roles.add(viewer)
            tx.roles.add(editor)
        with store.transaction(readonly=True) as tx:
            assert editor == tx.roles.get("editor")
            assert tx.roles.get("nobody") is None
            assert [editor, viewer] == tx.roles.list()

    def test_a_duplicate_role_name_is_a_conflict_on_name(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.roles.add(Role(name="editor"))
        with pytest.raises(ConflictError) as caught, store.transaction() as tx:
            tx.roles.add(Role(name="editor", description="again"))
        assert caught.value.field == "name"

    def test_role_update_replaces_it_and_a_missing_role_is_not_found(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.roles.add(Role(name="editor", permissions={"a:b"}, inherits={"x"}))
            updated = Role(name="editor", permissions={"c:d"}, description="new")
            assert updated == tx.roles.update(updated)
            assert updated == tx.roles.get("editor")
            with pytest.raises(NotFoundError):
                tx.roles.update(Role(name="ghost"))

    def test_role_delete_reports_whether_the_role_existed(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.roles.add(Role(name="editor"))
            assert tx.roles.delete("editor") is True
            assert tx.roles.delete("editor") is False
            assert tx.roles.list() == []

    def test_every_role_write_bumps_the_roles_version(self, store: Store) -> None:
        versions = []
        with store.transaction() as tx:
            versions.append(tx.roles.version())
            tx.roles.add(Role(name="editor"))
            versions.append(tx.roles.version())
            tx.roles.update(Role(name="editor", description="changed"))
            versions.append(tx.roles.version())
            tx.roles.delete("editor")
            versions.append(tx.roles.version())
            tx.roles.delete("editor")  # nothing deleted, nothing changed
            versions.append(tx.roles.version())
        assert versions == sorted(versions)
        assert 3 == len(set(versions[1:])) == versions[-1] - versions[0]
        with pytest.raises(Rollback):
            fail_after(store, lambda tx: tx.roles.add(Role(name="temporary")))
        assert versions[-1] == self.read(store, lambda tx: tx.roles.version())

    # -- registered permissions -------------------------------------------------

    def test_permissions_are_added_read_and_listed_by_name(self, store: Store) -> None:
        export = Permission(name="reports:export", created_at=T0 + HOUR)
        read = Permission(name="reports:read", description="Read reports", created_at=T0)
        with store.transaction() as tx:
            assert read == tx.permissions.add(read)
            tx.permissions.add(export)
        with store.transaction(readonly=True) as tx:
            stored = present(tx.permissions.get("reports:read"))
            assert (
                stored.name,
                stored.description,
                stored.created_at,
            ) == ("reports:read", "Read reports", T0)
            assert tx.permissions.get("reports:delete") is None
            assert [export, read] == tx.permissions.list()
            assert [p.created_at for p in tx.permissions.list()] == [T0 + HOUR, T0]

    def test_a_duplicate_permission_is_a_conflict_on_name_and_changes_nothing(
        self, store: Store
    ) -> None:
        first = Permission(name="reports:read", description="first", created_at=T0)
        with store.transaction() as tx:
            tx.permissions.add(first)
        with store.transaction() as tx:
            with pytest.raises(ConflictError) as caught:
                tx.permissions.add(attrs.evolve(first, description="second"))
            assert caught.value.field == "name"
            tx.permissions.add(Permission(name="reports:export", created_at=T0))  # still usable
        assert [
            (p.name, p.description) for p in self.read(store, lambda tx: tx.permissions.list())
        ] == [("reports:export", ""), ("reports:read", "first")]

    def test_a_stored_permission_needs_an_aware_created_at(self, store: Store) -> None:
        naive = datetime(2024, 5, 17, 9, 30)
        with store.transaction() as tx:
            with pytest.raises(ValueError, match="created_at"):
                tx.permissions.add(Permission(name="reports:read"))
            with pytest.raises(ValueError, match="aware"):
                tx.permissions.add(Permission(name="reports:read", created_at=naive))
            assert tx.permissions.list() == []

    def test_a_permission_write_needs_a_writable_transaction(self, store: Store) -> None:
        with store.transaction(readonly=True) as tx, pytest.raises(RuntimeError):
            tx.permissions.add(Permission(name="reports:read", created_at=T0))

    # -- refresh tokens ----------------------------------------------------------

    def test_refresh_tokens_round_trip(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        token = a_refresh_token(
            b"\x00\xff" * 16, user.id, token_version=3, used_at=T0, revoked_at=T0 + HOUR
        )
        with store.transaction() as tx:
            tx.refresh_tokens.add(token)
        with store.transaction(readonly=True) as tx:
            assert token == tx.refresh_tokens.get(b"\x00\xff" * 16)
            assert tx.refresh_tokens.get(b"\x00" * 32) is None

    def test_a_duplicate_token_hash_or_a_missing_user_is_refused(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            tx.refresh_tokens.add(a_refresh_token(b"hash", user.id))
            with pytest.raises(ConflictError) as caught:
                tx.refresh_tokens.add(a_refresh_token(b"hash", user.id, family_id="other"))
            assert caught.value.field == "token_hash"
            with pytest.raises(NotFoundError):
                tx.refresh_tokens.add(a_refresh_token(b"orphan", user.id + 100))
            assert tx.refresh_tokens.get(b"orphan") is None

    def test_a_refresh_token_is_marked_used_only_once(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            tx.refresh_tokens.add(a_refresh_token(b"hash", user.id))
            assert tx.refresh_tokens.mark_used(b"hash", T0 + HOUR) is True
            assert tx.refresh_tokens.mark_used(b"hash", T0 + 2 * HOUR) is False
            assert tx.refresh_tokens.mark_used(b"missing", T0) is False
            assert present(tx.refresh_tokens.get(b"hash")).used_at == T0 + HOUR

    def test_revoking_a_family_or_a_user_counts_only_live_tokens(self, store: Store) -> None:
        ada = self.add_user(store, "ada@example.com")
        grace = self.add_user(store, "grace@example.com")
        with store.transaction() as tx:
            tx.refresh_tokens.add(a_refresh_token(b"a1", ada.id, family_id="f1"))
            tx.refresh_tokens.add(a_refresh_token(b"a2", ada.id, family_id="f1"))
            tx.refresh_tokens.add(a_refresh_token(b"a3", ada.id, family_id="f2"))
            tx.refresh_tokens.add(a_refresh_token(b"g1", grace.id, family_id="f3"))
            assert tx.refresh_tokens.revoke_family("f1", T0) == 2
            assert tx.refresh_tokens.revoke_family("f1", T0 + HOUR) == 0
            assert tx.refresh_tokens.revoke_user(ada.id, T0 + HOUR) == 1
            assert present(tx.refresh_tokens.get(b"a1")).revoked_at == T0
            assert present(tx.refresh_tokens.get(b"a3")).revoked_at == T0 + HOUR
            assert present(tx.refresh_tokens.get(b"g1")).revoked_at is None

    def test_purging_refresh_tokens_removes_those_expired_at_now(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            for offset, token_hash in ((-1, b"old"), (0, b"due"), (1, b"live")):
                tx.refresh_tokens.add(
                    a_refresh_token(token_hash, user.id, expires_at=T0 + offset * HOUR)
                )
            assert tx.refresh_tokens.purge_expired(T0) == 2
            assert tx.refresh_tokens.get(b"due") is None
            assert tx.refresh_tokens.get(b"live") is not None

    # -- revoked access tokens -----------------------------------------------

    def test_a_revoked_jti_stays_revoked_until_purged_after_expiry(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.revoked_tokens.add("jti-1", T0 + HOUR)
            tx.revoked_tokens.add("jti-2", T0 + 3 * HOUR)
            tx.revoked_tokens.add("jti-2", T0 + 2 * HOUR)  # the later expiry wins
        with store.transaction() as tx:
            assert tx.revoked_tokens.is_revoked("jti-1")
            assert not tx.revoked_tokens.is_revoked("jti-3")
            assert tx.revoked_tokens.purge_expired(T0) == 0
            assert tx.revoked_tokens.purge_expired(T0 + HOUR) == 1
            assert not tx.revoked_tokens.is_revoked("jti-1")
            assert tx.revoked_tokens.purge_expired(T0 + 2 * HOUR) == 0
            assert tx.revoked_tokens.is_revoked("jti-2")
            assert tx.revoked_tokens.purge_expired(T0 + 3 * HOUR) == 1

    # -- API keys -------------------------------------------------------------

    def test_api_keys_are_found_by_id_and_prefix(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            key = tx.api_keys.add(
                an_api_key("AbC123", user.id, scopes={"users:read"}, expires_at=T0 + HOUR)
            )
            unscoped = tx.api_keys.add(an_api_key("xyz789", user.id))
        assert key.id >= 1
        assert unscoped.id > key.id
        assert unscoped.scopes is None
        with store.transaction(readonly=True) as tx:
            assert key == tx.api_keys.get(key.id)
            assert key == tx.api_keys.get_by_prefix("AbC123")
            assert tx.api_keys.get_by_prefix("abc123") is None, "prefixes are case-sensitive"
            assert tx.api_keys.get(key.id + 1000) is None
            assert present(tx.api_keys.get(key.id)).secret_hash == b"\x01" * 32

    def test_a_duplicate_prefix_or_a_missing_user_is_refused(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            tx.api_keys.add(an_api_key("prefix", user.id))
            with pytest.raises(ConflictError) as caught:
                tx.api_keys.add(an_api_key("prefix", user.id))
            assert caught.value.field == "prefix"
            with pytest.raises(NotFoundError):
                tx.api_keys.add(an_api_key("orphan", user.id + 100))

    def test_api_key_update_writes_only_the_mutable_fields(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            key = tx.api_keys.add(an_api_key("prefix", user.id))
            changed = attrs.evolve(
                key,
                name="renamed",
                scopes={"a:b"},
                expires_at=T0 + HOUR,
                last_used_at=T0,
                revoked_at=T0 + HOUR,
                prefix="hijacked",
                secret_hash=b"\x02" * 32,
                created_at=T0 - HOUR,
            )
            stored = tx.api_keys.update(changed)
            assert (
                attrs.evolve(changed, prefix="prefix", secret_hash=key.secret_hash, created_at=T0)
                == stored
            )
            assert stored == tx.api_keys.get(key.id)
            with pytest.raises(NotFoundError):
                tx.api_keys.update(attrs.evolve(key, id=key.id + 1000))

    def test_a_users_keys_are_listed_in_order_and_revoked_together(self, store: Store) -> None:
        ada = self.add_user(store, "ada@example.com")
        grace = self.add_user(store, "grace@example.com")
        with store.transaction() as tx:
            first = tx.api_keys.add(an_api_key("k1", ada.id))
            tx.api_keys.add(an_api_key("k2", grace.id))
            second = tx.api_keys.add(an_api_key("k3", ada.id, revoked_at=T0))
            assert [first, second] == tx.api_keys.list_for_user(ada.id)
            assert tx.api_keys.revoke_user(ada.id, T0 + HOUR) == 1
            assert [k.revoked_at for k in tx.api_keys.list_for_user(ada.id)] == [T0 + HOUR, T0]
            assert present(tx.api_keys.get_by_prefix("k2")).revoked_at is None

    # -- one-time tokens -----------------------------------------------------

    def test_a_one_time_token_is_consumed_once(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com")
        token = a_one_time_token(b"otp", user.id, purpose="email_verification")
        with store.transaction() as tx:
            tx.one_time_tokens.add(token)
            assert token == tx.one_time_tokens.get(b"otp")
            assert tx.one_time_tokens.consume(b"otp", T0) is True
            assert tx.one_time_tokens.consume(b"otp", T0) is False
            assert tx.one_time_tokens.consume(b"missing", T0) is False
            assert attrs.evolve(token, used_at=T0) == tx.one_time_tokens.get(b"otp")
            with pytest.raises(ConflictError):
                tx.one_time_tokens.add(token)
            with pytest.raises(NotFoundError):
                tx.one_time_tokens.add(a_one_time_token(b"orphan", user.id + 100))

    def test_one_time_tokens_are_deleted_per_user_and_purpose_and_purged(
        self, store: Store
    ) -> None:
        ada = self.add_user(store, "ada@example.com")
        grace = self.add_user(store, "grace@example.com")
        with store.transaction() as tx:
            tx.one_time_tokens.add(a_one_time_token(b"a1", ada.id, purpose="password_reset"))
            tx.one_time_tokens.add(a_one_time_token(b"a2", ada.id, purpose="email_verification"))
            tx.one_time_tokens.add(a_one_time_token(b"a3", ada.id, purpose="password_reset"))
            tx.one_time_tokens.add(a_one_time_token(b"g1", grace.id, expires_at=T0))
            assert tx.one_time_tokens.delete_for_user(ada.id, "password_reset") == 2
            assert tx.one_time_tokens.get(b"a2") is not None
            assert tx.one_time_tokens.delete_for_user(ada.id) == 1
            assert tx.one_time_tokens.purge_expired(T0) == 1
            assert tx.one_time_tokens.get(b"g1") is None

    # -- login attempts and meta ----------------------------------------------

    def test_login_attempts_are_put_read_deleted_and_purged(self, store: Store) -> None:
        locked = LoginAttempts(key="a", failures=5, locked_until=T0 + HOUR, updated_at=T0)
        with store.transaction() as tx:
            tx.login_attempts.put(
                LoginAttempts(key="a", failures=1, locked_until=None, updated_at=T0)
            )
            tx.login_attempts.put(locked)
            tx.login_attempts.put(
                LoginAttempts(key="b", failures=2, locked_until=None, updated_at=T0)
            )
            tx.login_attempts.put(
                LoginAttempts(key="c", failures=9, locked_until=T0, updated_at=T0)
            )
            assert locked == tx.login_attempts.get("a")
            assert tx.login_attempts.purge_expired(T0) == 2
            assert locked == tx.login_attempts.get("a")
            tx.login_attempts.delete("a")
            tx.login_attempts.delete("never-there")
            assert tx.login_attempts.get("a") is None

    def test_meta_values_are_set_and_read(self, store: Store) -> None:
        with store.transaction() as tx:
            assert tx.meta.get("app.setting") is None
            tx.meta.set("app.setting", "one")
            tx.meta.set("app.setting", "two")
            assert tx.meta.schema_version() >= 1
        assert self.read(store, lambda tx: tx.meta.get("app.setting")) == "two"

    # -- transactions ------------------------------------------------------

    def test_an_exception_rolls_back_every_write_and_propagates(self, store: Store) -> None:
        ada = self.add_user(store, "ada@example.com", roles={"user"})
        with store.transaction() as tx:
            tx.roles.add(Role(name="user"))
            tx.api_keys.add(an_api_key("keep", ada.id))
            tx.meta.set("app.setting", "before")
        before = self.snapshot(store)

        def write_everything(tx: UnitOfWork) -> None:
            tx.users.add(a_user("grace@example.com", username="grace"))
            tx.users.update(attrs.evolve(ada, name="changed", roles={"admin"}))
            tx.users.remove_role("admin")
            tx.users.add_many([a_user("bulk@example.com")])
            tx.roles.update(Role(name="user", permissions={"x:y"}))
            tx.roles.add(Role(name="other"))
            tx.permissions.add(Permission(name="reports:read", created_at=T0))
            tx.refresh_tokens.add(a_refresh_token(b"rt", ada.id))
            tx.revoked_tokens.add("jti", T0)
            tx.api_keys.revoke_user(ada.id, T0)
            tx.one_time_tokens.add(a_one_time_token(b"ot", ada.id))
            tx.login_attempts.put(
                LoginAttempts(key="k", failures=1, locked_until=None, updated_at=T0)
            )
            tx.meta.set("app.setting", "after")
            tx.users.delete(ada.id)

        with pytest.raises(Rollback):
            fail_after(store, write_everything)
        assert before == self.snapshot(store)

    def test_a_rolled_back_insert_leaves_its_keys_free(self, store: Store) -> None:
        with pytest.raises(Rollback):
            fail_after(store, lambda tx: tx.users.add(a_user("ada@example.com", username="ada")))
        self.add_user(store, "ada@example.com", username="ada")

    def test_a_nested_transaction_rolls_back_only_its_own_writes(self, store: Store) -> None:
        with store.transaction() as outer:
            outer.users.add(a_user("outer@example.com"))
            with pytest.raises(Rollback):
                fail_after(store, lambda inner: inner.users.add(a_user("inner@example.com")))
            with store.transaction() as inner:
                inner.users.add(a_user("kept@example.com"))
        emails = [email_key_of(user) for user in self.all_users(store)]
        assert emails == ["outer@example.com", "kept@example.com"]

    def test_an_outer_rollback_undoes_a_completed_nested_transaction(self, store: Store) -> None:
        def nest(outer: UnitOfWork) -> None:
            with store.transaction() as inner:
                inner.users.add(a_user("inner@example.com"))
            outer.users.add(a_user("outer@example.com"))

        with pytest.raises(Rollback):
            fail_after(store, nest)
        assert self.all_users(store) == []

    def test_writing_in_a_read_only_transaction_is_an_error(self, store: Store) -> None:
        with store.transaction(readonly=True) as tx:
            with pytest.raises(RuntimeError):
                tx.users.add(a_user("ada@example.com"))
            with pytest.raises(RuntimeError):
                tx.meta.set("k", "v")
            with pytest.raises(RuntimeError), store.transaction():
                pass
        assert self.all_users(store) == []

    def test_a_unit_of_work_is_unusable_after_its_block(self, store: Store) -> None:
        with store.transaction() as tx:
            pass
        with pytest.raises(RuntimeError):
            tx.users.get(1)
        with pytest.raises(RuntimeError):
            tx.users.add(a_user("late@example.com"))

    def test_threads_never_lose_an_update(self, store: Store) -> None:
        with store.transaction() as tx:
            tx.meta.set("counter", "0")

        def increment() -> None:
            for _ in range(25):
                with store.transaction() as tx:
                    tx.meta.set("counter", str(int(tx.meta.get("counter") or "0") + 1))

        threads = [threading.Thread(target=increment) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert self.read(store, lambda tx: tx.meta.get("counter")) == "100"

    def test_threads_adding_the_same_emails_create_each_once(self, store: Store) -> None:
        conflicts: list[int] = []

        def register() -> None:
            for number in range(20):
                try:
                    with store.transaction() as tx:
                        tx.users.add(a_user(f"user{number}@example.com"))
                except ConflictError:
                    conflicts.append(number)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        emails = [email_key_of(user) for user in self.all_users(store)]
        assert sorted(f"user{n}@example.com" for n in range(20)) == sorted(emails)
        assert len(conflicts) == 60

    # -- custom fields -----------------------------------------------------------

    CUSTOM_FIELDS = (
        CustomField(name="tenant_id", indexed=True),
        CustomField(name="employee_no", unique=True),
        CustomField(name="seats", type=int),
        CustomField(name="ratio", type=float),
        CustomField(name="beta", type=bool),
    )

    def declared(self, store: Store) -> Store:
        store.declare_custom_fields(self.CUSTOM_FIELDS)
        return store

    def test_custom_fields_round_trip_and_unset_ones_read_as_none(self, store: Store) -> None:
        self.declared(store)
        values = {"tenant_id": "acme", "seats": 3, "ratio": 0.5, "beta": True}
        user = self.add_user(store, "ada@example.com", custom_fields=values)
        stored = self.read(store, lambda tx: tx.users.get(user.id))
        assert {**values, "employee_no": None} == dict(stored.custom_fields)
        assert stored == user
        assert type(stored.custom_fields["beta"]) is bool
        assert type(stored.custom_fields["seats"]) is int

    def test_single_reads_carry_custom_fields(self, store: Store) -> None:
        # A single read made before the declaration (a pooled connection's
        # first one) must not keep reading rows with the old declaration.
        with store.transaction(single_read=True) as tx:
            tx.users.get(1)
        self.declared(store)
        user = self.add_user(store, "ada@example.com", custom_fields={"tenant_id": "acme"})
        reads: tuple[Callable[[UnitOfWork], User | None], ...] = (
            lambda tx: tx.users.get(user.id),
            lambda tx: tx.users.get_by_email(present(user.email_key)),
        )
        for read in reads:
            with store.transaction(single_read=True) as tx:
                stored = present(read(tx))
            assert stored.custom_fields["tenant_id"] == "acme"

    def test_custom_keys_not_declared_are_dropped(self, store: Store) -> None:
        self.declared(store)
        user = self.add_user(store, "ada@example.com", custom_fields={"tenant_id": "a", "x": 1})
        assert "x" not in user.custom_fields
        assert "x" not in self.read(store, lambda tx: present(tx.users.get(user.id))).custom_fields

    def test_without_a_declaration_users_have_no_custom_fields(self, store: Store) -> None:
        user = self.add_user(store, "ada@example.com", custom_fields={"tenant_id": "a"})
        assert dict(self.read(store, lambda tx: present(tx.users.get(user.id))).custom_fields) == {}

    def test_a_duplicate_unique_custom_value_is_a_conflict_naming_the_field(
        self, store: Store
    ) -> None:
        self.declared(store)
        self.add_user(store, "ada@example.com", custom_fields={"employee_no": "E1"})
        with store.transaction() as tx:
            with pytest.raises(ConflictError) as caught:
                tx.users.add(a_user("grace@example.com", custom_fields={"employee_no": "E1"}))
            assert caught.value.field == "employee_no"
            # The transaction is still usable, and nothing of the refused user is stored.
            tx.users.add(a_user("grace@example.com", custom_fields={"employee_no": "E2"}))
        assert len(self.all_users(store)) == 2

    def test_unique_custom_values_compare_exactly(self, store: Store) -> None:
        self.declared(store)
        for email, number in (("a@example.com", "E1"), ("b@example.com", "e1")):
            self.add_user(store, email, custom_fields={"employee_no": number})
        # Any number of accounts may leave a unique field unset.
        self.add_user(store, "c@example.com")
        self.add_user(store, "d@example.com", custom_fields={"employee_no": None})
        assert len(self.all_users(store)) == 4

    def test_an_update_taking_another_users_unique_value_is_a_conflict(self, store: Store) -> None:
        self.declared(store)
        self.add_user(store, "ada@example.com", custom_fields={"employee_no": "E1"})
        grace = self.add_user(store, "grace@example.com", custom_fields={"employee_no": "E2"})
        with store.transaction() as tx, pytest.raises(ConflictError) as caught:
            tx.users.update(attrs.evolve(grace, custom_fields={"employee_no": "E1"}))
        assert caught.value.field == "employee_no"
        stored = self.read(store, lambda tx: present(tx.users.get(grace.id)))
        assert stored.custom_fields["employee_no"] == "E2"

    def test_a_unique_custom_value_is_free_once_changed(self, store: Store) -> None:
        self.declared(store)
        ada = self.add_user(store, "ada@example.com", custom_fields={"employee_no": "E1"})
        with store.transaction() as tx:
            tx.users.update(attrs.evolve(ada, custom_fields={"employee_no": None}))
        self.add_user(store, "grace@example.com", custom_fields={"employee_no": "E1"})

    def test_filters_by_custom_fields_match_exact_typed_values(self, store: Store) -> None:
        self.declared(store)
        a = self.add_user(store, "a@example.com", custom_fields={"tenant_id": "acme", "seats": 1})
        b = self.add_user(store, "b@example.com", custom_fields={"tenant_id": "Acme", "beta": True})
        c = self.add_user(
            store, "c@example.com", status=UserStatus.INACTIVE, custom_fields={"tenant_id": "acme"}
        )

        def ids(**custom: Any) -> list[int]:
            return [u.id for u in self.all_users(store, UserFilter(custom_fields=custom))]

        assert [a.id, c.id] == ids(tenant_id="acme")
        assert [b.id] == ids(tenant_id="Acme")
        assert [a.id] == ids(seats=1)
        assert ids(seats=True) == []
        assert [b.id] == ids(beta=True)
        assert ids(beta=1) == []
        assert [a.id] == ids(tenant_id="acme", seats=1)
        active = UserFilter(status=UserStatus.ACTIVE, custom_fields={"tenant_id": "acme"})
        assert [a.id] == [u.id for u in self.all_users(store, active)]
        with store.transaction(readonly=True) as tx:
            assert tx.users.count(filter=UserFilter(custom_fields={"tenant_id": "acme"})) == 2
            assert tx.users.count(filter=active) == 1

    def test_hostile_custom_values_round_trip_and_filter_literally(self, store: Store) -> None:
        self.declared(store)
        for number, text in enumerate(HOSTILE_STRINGS[:9]):
            user = self.add_user(store, f"u{number}@example.com", custom_fields={"tenant_id": text})
            found = self.all_users(store, UserFilter(custom_fields={"tenant_id": text}))
            assert [user.id] == [u.id for u in found]
            assert text == found[0].custom_fields["tenant_id"]

    def test_unstorable_custom_text_is_refused(self, store: Store) -> None:
        self.declared(store)
        with store.transaction() as tx, pytest.raises(ValidationError) as caught:
            tx.users.add(a_user("ada@example.com", custom_fields={"tenant_id": "a\x00b"}))
        assert "tenant_id" in caught.value.errors
        assert self.all_users(store) == []
        filter = UserFilter(custom_fields={"tenant_id": "\ud800"})
        assert self.all_users(store, filter) == []

    def test_declaring_again_is_idempotent_and_a_dropped_field_is_hidden(
        self, store: Store
    ) -> None:
        self.declared(store)
        user = self.add_user(store, "ada@example.com", custom_fields={"employee_no": "E1"})
        self.declared(store)
        store.declare_custom_fields(self.CUSTOM_FIELDS[:1])
        stored = self.read(store, lambda tx: present(tx.users.get(user.id)))
        assert dict(stored.custom_fields) == {"tenant_id": None}
        # No longer unique: another account may take the value.
        self.add_user(store, "grace@example.com", custom_fields={"employee_no": "E1"})

    def test_an_update_keeps_the_values_of_fields_it_does_not_declare(self, store: Store) -> None:
        """A process that declares fewer fields (or none: the command line)
        never erases the others' values when it writes a user."""
        self.declared(store)
        user = self.add_user(
            store, "ada@example.com", custom_fields={"tenant_id": "acme", "employee_no": "E1"}
        )
        store.declare_custom_fields(())
        with store.transaction() as tx:
            renamed = tx.users.update(attrs.evolve(present(tx.users.get(user.id)), name="Ada"))
        assert dict(renamed.custom_fields) == {}
        store.declare_custom_fields(self.CUSTOM_FIELDS[:1])
        with store.transaction() as tx:
            current = present(tx.users.get(user.id))
            tx.users.update(attrs.evolve(current, custom_fields={"tenant_id": None}))
        self.declared(store)
        stored = self.read(store, lambda tx: present(tx.users.get(user.id)))
        assert stored.name == "Ada"
        assert stored.custom_fields["tenant_id"] is None
        assert stored.custom_fields["employee_no"] == "E1"

    def test_a_value_of_another_type_reads_as_unset(self, store: Store) -> None:
        self.declared(store)
        user = self.add_user(store, "ada@example.com", custom_fields={"seats": 3})
        store.declare_custom_fields((CustomField(name="seats", type=str),))
        stored = self.read(store, lambda tx: present(tx.users.get(user.id)))
        assert dict(stored.custom_fields) == {"seats": None}

    PLAN = CustomField(name="plan", default="free")
    SEATS = CustomField(name="seats", type=int, default=1, indexed=True)

    def emails_where(self, store: Store, **values: Any) -> list[str | None]:
        """The emails of the users a filter by ``values`` keeps, and its count."""
        filter = UserFilter(custom_fields=values)
        listed = [user.email for user in self.all_users(store, filter)]
        assert len(listed) == self.read(store, lambda tx: tx.users.count(filter=filter))
        return listed

    def test_accounts_without_a_stored_value_read_as_the_default_and_filters_agree(
        self, store: Store
    ) -> None:
        """A field with a default added over existing accounts: they read as the
        default, and a filter by the default keeps them (listing and count)."""
        old = self.add_user(store, "old@example.com")
        other = self.add_user(store, "other@example.com", custom_fields={"seats": "three"})
        store.declare_custom_fields((self.PLAN, self.SEATS))
        team = self.add_user(store, "team@example.com", custom_fields={"plan": "team", "seats": 4})
        for user_id in (old.id, other.id):  # nothing stored; a value of another type
            with store.transaction(readonly=True) as tx:
                read = present(tx.users.get(user_id))
            assert dict(read.custom_fields) == {"plan": "free", "seats": 1}
            assert {"plan": "free", "seats": 1}.items() <= read.to_public().items()
        assert dict(self.read(store, lambda tx: present(tx.users.get(team.id))).custom_fields) == {
            "plan": "team",
            "seats": 4,
        }
        assert self.emails_where(store, plan="free") == ["old@example.com", "other@example.com"]
        assert self.emails_where(store, seats=1) == ["old@example.com", "other@example.com"]
        assert self.emails_where(store, plan="team", seats=4) == ["team@example.com"]
        assert self.emails_where(store, plan="team", seats=1) == []
        assert self.emails_where(store, seats=True) == []  # type-exact, as ever

    def test_the_default_is_read_not_written_back_so_a_process_with_another_one_reads_its_own(
        self, store: Store
    ) -> None:
        """Writing an account that reads as the default does not store the
        default: two processes whose declarations differ (one without the
        field, or with another default) each read, and filter, by their own."""
        user = self.add_user(store, "ada@example.com")
        store.declare_custom_fields((self.PLAN,))
        with store.transaction() as tx:
            tx.users.update(attrs.evolve(present(tx.users.get(user.id)), name="Ada"))
        store.declare_custom_fields((attrs.evolve(self.PLAN, default="team"),))
        stored = self.read(store, lambda tx: present(tx.users.get(user.id)))
        assert (stored.name, stored.custom_fields["plan"]) == ("Ada", "team")
        assert self.emails_where(store, plan="team") == ["ada@example.com"]
        assert self.emails_where(store, plan="free") == []

    def test_a_default_set_explicitly_is_stored_and_a_cleared_value_reads_as_the_default(
        self, store: Store
    ) -> None:
        store.declare_custom_fields((self.PLAN,))
        user = self.add_user(store, "ada@example.com")
        with store.transaction() as tx:
            current = present(tx.users.get(user.id))
            tx.users.update(
                attrs.evolve(current, custom_fields=current.custom_fields.changed({"plan": "free"}))
            )
        store.declare_custom_fields((attrs.evolve(self.PLAN, default="team"),))
        assert (
            self.read(store, lambda tx: present(tx.users.get(user.id))).custom_fields["plan"]
            == "free"
        )
        assert self.emails_where(store, plan="free") == ["ada@example.com"]
        with store.transaction() as tx:
            current = present(tx.users.get(user.id))
            tx.users.update(
                attrs.evolve(current, custom_fields=current.custom_fields.changed({"plan": None}))
            )
        stored = self.read(store, lambda tx: present(tx.users.get(user.id)))
        assert stored.custom_fields["plan"] == "team"
        assert self.emails_where(store, plan="team") == ["ada@example.com"]

    def test_declaring_unique_over_duplicates_is_a_conflict(self, store: Store) -> None:
        store.declare_custom_fields((CustomField(name="employee_no"),))
        for email in ("a@example.com", "b@example.com"):
            self.add_user(store, email, custom_fields={"employee_no": "E1"})
        with pytest.raises(ConflictError) as caught:
            store.declare_custom_fields((CustomField(name="employee_no", unique=True),))
        assert caught.value.field == "employee_no"
        # The old declaration still holds.
        self.add_user(store, "c@example.com", custom_fields={"employee_no": "E1"})

    # -- snapshot ------------------------------------------------------------

    def snapshot(self, store: Store) -> dict[str, Any]:
        """Everything readable about the store, for before/after comparisons."""
        with store.transaction(readonly=True) as tx:
            users = tx.users.list(after=None, limit=100_000, filter=EVERYONE)
            return {
                "users": users,
                "roles": tx.roles.list(),
                "roles_version": tx.roles.version(),
                "permissions": tx.permissions.list(),
                "api_keys": [tx.api_keys.list_for_user(user.id) for user in users],
                "refresh": tx.refresh_tokens.get(b"rt"),
                "revoked": tx.revoked_tokens.is_revoked("jti"),
                "one_time": tx.one_time_tokens.get(b"ot"),
                "login": tx.login_attempts.get("k"),
                "meta": tx.meta.get("app.setting"),
                "user_roles": {role: tx.users.count_with_role(role) for role in ("user", "admin")},
            }
