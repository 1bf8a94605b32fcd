"""``core.users``: registration, administration and self-service of accounts.

Every method that acts for someone takes the acting :class:`~usercore.Principal`
first and checks the policy itself.  The seed rule — only admins create,
update or delete *other* users; users read, update and delete themselves —
comes from the grants of the built-in roles (``users:update:own`` ...), not
from special cases here.  Every write validates all its input first and
changes nothing when validation fails.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import attrs

from usercore import validation
from usercore.custom_fields import same_value
from usercore.domain import (
    Page,
    Principal,
    User,
    UserStatus,
    email_key,
)
from usercore.errors import (
    ConflictError,
    PermissionDenied,
    ReauthenticationRequired,
    RegistrationClosed,
    ValidationError,
)
from usercore.passwords import bcrypt_available
from usercore.policy import CompiledPolicy
from usercore.ports import UnitOfWork, UserFilter
from usercore.services._context import Context
from usercore.services._delegation import (
    SELF_SERVICE_ROLES,
    authorize_on_record,
    holds_wildcard,
    keep_a_wildcard_holder,
    require_delegation,
    role_table,
)
from usercore.services._fresh import require_fresh_auth
from usercore.services._lookup import check_id, found, in_id_range
from usercore.services.auth import Lockout
from usercore.services.sessions import INVITATION
from usercore.settings import Settings
from usercore.storage._schema import conflict, custom_conflict
from usercore.tokens import _reject

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11+; it appears in annotations only.
    from typing_extensions import Unpack

__all__ = ["ImportReport", "UserChanges", "UserService", "registration_allowed"]

MAX_PER_PAGE = 100
UPDATABLE_FIELDS = frozenset(
    {"email", "username", "name", "roles", "status", "password", "custom_fields"}
)


class UserChanges(TypedDict, total=False):
    """The fields :meth:`UserService.update` may change; each one given changes."""

    email: str
    username: str | None
    name: str | None
    roles: Iterable[str]
    status: UserStatus | str
    password: str
    custom_fields: Mapping[str, Any]


MAX_SEARCH_LENGTH = 200


@attrs.frozen(kw_only=True)
class ImportReport:
    """The outcome of :meth:`UserService.import_users`.

    ``skipped`` counts records whose email or username already exists (in the
    store or earlier in the same import); ``errors`` pairs the index of each
    invalid record with its :class:`ValidationError`.
    """

    created: int = 0
    skipped: int = 0
    errors: list[tuple[int, ValidationError]] = attrs.field(factory=list)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"u:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: object) -> int:
    """The id a cursor continues after; ``ValidationError`` for anything we did not issue."""
    problem = ValidationError.single("cursor", "is not a valid cursor")
    if not isinstance(cursor, str) or not 0 < len(cursor) <= 40:
        raise problem
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problem from None
    kind, _, number = text.partition(":")
    if kind != "u" or not number.isdigit() or len(number) > 19:
        raise problem
    return int(number)


def _role_names(value: object, field: str = "roles") -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError.single(field, "must be a list of role names")
    names = list(value)
    if not all(isinstance(name, str) for name in names):
        raise ValidationError.single(field, "must be a list of role names")
    return frozenset(names)


def _status(value: object) -> UserStatus:
    try:
        return UserStatus(value)
    except ValueError:
        raise ValidationError.single("status", "must be 'active' or 'inactive'") from None


def registration_allowed(settings: Settings, invitation: object) -> bool:
    """Whether ``Settings.registration`` lets a self-registration through: always
    when ``"open"``, with an ``invitation`` (not yet checked) when ``"invite"``,
    never when ``"closed"``."""
    mode = settings.registration
    return mode == "open" or (mode == "invite" and invitation is not None)


def unknown_roles(tx: UnitOfWork, roles: Iterable[str]) -> list[str]:
    return sorted(name for name in roles if tx.roles.get(name) is None)


def check_roles_exist(tx: UnitOfWork, roles: Iterable[str], field: str = "roles") -> None:
    missing = unknown_roles(tx, roles)
    if missing:
        raise ValidationError({field: [f"unknown role {name!r}" for name in missing]})


class UserService:
    """``core.users``."""

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._lockout = Lockout(ctx)

    # -- creation -------------------------------------------------------------

    def register(
        self,
        *,
        email: str | None = None,
        password: str,
        username: str | None = None,
        name: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        invitation: str | None = None,
    ) -> User:
        """Self-service sign-up: a new active account with the role ``user``.

        ``custom_fields`` gives values of the declared custom fields
        (``Settings.custom_fields``); only ``registrable`` ones may be given
        here, defaults fill the others and required ones must end up set.
        With an ``invitation`` they change only the fields given, over those
        the invitation set.

        Raises ``ValidationError`` (every field at once) or ``ConflictError``
        (``field`` ``"email"``/``"username"``) when the address or name is taken.
        With ``Settings.registration_enumeration_safe`` a taken email also
        emits ``user.duplicate_registration_attempted`` (``user_id`` and the stored
        ``email`` of the existing account), so the app can tell that address
        while the HTTP layer answers the same as for a new account.

        ``Settings.registration`` decides who may: ``"open"`` anyone;
        ``"invite"`` only with an ``invitation`` from :meth:`invite`;
        ``"closed"`` nobody.  Otherwise ``RegistrationClosed``, raised before
        the input is looked at, so it never tells whether an address is taken.
        With an ``invitation`` (accepted in ``"open"`` and ``"invite"``) the
        account :meth:`invite` made is completed instead: ``email`` must be the
        invited one; ``TokenError`` (one opaque error, the invitation not
        spent) for an unknown, spent, expired or voided invitation, or one for
        another address.
        """
        if not registration_allowed(self._ctx.settings, invitation):
            mode = self._ctx.settings.registration
            self._ctx.events.emit("user.registration_refused", mode=mode)
            raise RegistrationClosed(
                "Registration is by invitation only." if mode == "invite" else None
            )
        if invitation is not None:
            return self._accept_invitation(
                invitation,
                email=email,
                password=password,
                username=username,
                name=name,
                custom_fields=custom_fields,
            )
        try:
            user = self._insert(
                email=email,
                password=password,
                username=username,
                name=name,
                roles=SELF_SERVICE_ROLES,
                status=UserStatus.ACTIVE,
                password_required=True,
                custom_fields=custom_fields,
                registering=True,
            )
        except ConflictError as exc:
            if exc.field == "email" and self._ctx.settings.registration_enumeration_safe:
                self._notify_duplicate(email)
            raise
        self._ctx.events.emit("user.registered", user_id=user.id, invited=False)
        return user

    def invite(
        self,
        actor: Principal,
        *,
        email: str,
        username: str | None = None,
        name: str | None = None,
        roles: Iterable[str] = ("user",),
        custom_fields: Mapping[str, Any] | None = None,
    ) -> tuple[User, str]:
        """Invite ``email`` to register: returns the pending account and the
        invitation token to send to that address (shown once, stored only as
        its SHA-256).

        Needs what :meth:`create` needs (``users:create``; ``roles:assign`` and
        the delegation rule for roles beyond ``user``).  The account is made
        now, inactive and without a password, holding the address and the
        roles; :meth:`register` with the token, the same email and a password
        activates it, with its email verified (the token reached that
        mailbox).  The token is single-use, expires after
        ``Settings.invitation_ttl`` and is void once the account's email or
        password changes.  ``RegistrationClosed`` while
        ``Settings.registration`` is ``"closed"`` (nobody could accept it);
        ``ConflictError`` when the address is taken (to invite again, delete
        the pending account first).
        """
        if self._ctx.settings.registration == "closed":
            raise RegistrationClosed(
                "Invitations cannot be accepted while Settings.registration is 'closed'."
            )
        tokens: list[str] = []

        def issue(tx: UnitOfWork, user: User) -> None:
            if user.email is None:  # an invitation goes to an address: rolls the insert back
                raise ValidationError.single("email", "is required")
            tokens.append(self._ctx.sessions.issue_one_time(tx, user, INVITATION))

        user = self._create_as(
            actor,
            email=email,
            password=None,
            username=username,
            name=name,
            roles=roles,
            status=UserStatus.INACTIVE,
            custom_fields=custom_fields,
            then=issue,
        )
        self._ctx.events.emit(
            "user.invited", user_id=user.id, actor=actor, roles=sorted(user.roles)
        )
        return user, tokens[0]

    def _accept_invitation(
        self,
        invitation: object,
        *,
        email: object,
        password: object,
        username: object,
        name: object,
        custom_fields: object,
    ) -> User:
        """Complete an invited account: ``TokenError`` (one opaque error) for an
        unknown, spent, expired or voided invitation, or one for another email;
        a rejected invitation is not spent."""
        ctx = self._ctx
        custom, problems = self._check_custom(custom_fields, registering=True, new=False)
        try:
            fields = validation.validate_user_fields(
                email=validation.NOT_GIVEN if email is None else email,
                username=username,
                name=name,
                password=password,
                settings=ctx.settings,
            )
        except ValidationError as exc:
            raise ValidationError({**problems, **exc.errors}) from None
        if problems:
            raise ValidationError(problems)
        if fields.email is None:
            raise ValidationError.single("email", "is required")
        assert fields.password is not None
        # Hashed before the token is looked at: every rejection costs the same.
        password_hash = ctx.hasher.hash(fields.password)
        with ctx.store.transaction() as tx:
            pending = ctx.sessions.consume_one_time(tx, invitation, INVITATION)
            # The invitation is for one address; another one (or an account no
            # longer pending) rolls back, leaving the token unspent.
            if (
                not hmac.compare_digest(
                    email_key(pending.email or "").encode(), email_key(fields.email).encode()
                )
                or pending.has_password
                or pending.is_active
            ):
                raise _reject("invitation for another email or a completed account")
            user = tx.users.update(
                attrs.evolve(
                    pending,
                    username=fields.username if fields.username is not None else pending.username,
                    name=fields.name if fields.name is not None else pending.name,
                    password_hash=password_hash,
                    status=UserStatus.ACTIVE,
                    email_verified=True,
                    custom_fields=pending.custom_fields.changed(custom),
                    updated_at=ctx.clock(),
                )
            )
        ctx.events.emit("user.registered", user_id=user.id, invited=True)
        return user

    def _notify_duplicate(self, email: object) -> None:
        """Tell the owner of a taken address that someone tried to register it."""
        address = validation.validate_email(email)
        with self._ctx.store.transaction(readonly=True) as tx:
            existing = tx.users.get_by_email(email_key(address))
        if existing is not None:
            self._ctx.events.emit(
                "user.duplicate_registration_attempted", user_id=existing.id, email=existing.email
            )

    def create(
        self,
        actor: Principal,
        *,
        email: str | None = None,
        password: str | None = None,
        username: str | None = None,
        name: str | None = None,
        roles: Iterable[str] = ("user",),
        status: UserStatus | str = UserStatus.ACTIVE,
        custom_fields: Mapping[str, Any] | None = None,
    ) -> User:
        """Create an account as an administrator (``users:create``; ``roles:assign``
        for any roles beyond ``user``).

        ``custom_fields``: values of any declared custom fields (defaults fill
        the others; required ones must end up set).

        Without a password the account cannot sign in until a password reset.
        ``PermissionDenied`` for roles granting what the actor does not hold
        itself (the delegation rule, see ``docs/rbac.md``).
        """
        user = self._create_as(
            actor,
            email=email,
            password=password,
            username=username,
            name=name,
            roles=roles,
            status=status,
            custom_fields=custom_fields,
        )
        self._ctx.events.emit(
            "user.created", user_id=user.id, actor=actor, roles=sorted(user.roles)
        )
        return user

    def _create_as(
        self,
        actor: Principal,
        *,
        email: object,
        password: object,
        username: object,
        name: object,
        roles: Iterable[str],
        status: UserStatus | str,
        custom_fields: Mapping[str, Any] | None = None,
        then: Callable[[UnitOfWork, User], object] | None = None,
    ) -> User:
        """An account made by ``actor`` (``users:create``, ``roles:assign`` for
        roles beyond ``user``, the delegation rule), ``then`` run in its transaction."""
        self._ctx.policy.require(actor, "users:create")
        role_set = _role_names(roles)
        if role_set - {"user"}:
            self._ctx.policy.require(actor, "roles:assign")
        return self._insert(
            email=email,
            password=password,
            username=username,
            name=name,
            roles=role_set,
            status=_status(status),
            password_required=False,
            actor=actor,
            custom_fields=custom_fields,
            then=then,
        )

    def _insert(
        self,
        *,
        email: object,
        password: object,
        username: object,
        name: object,
        roles: frozenset[str],
        status: UserStatus,
        password_required: bool,
        actor: Principal | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        registering: bool = False,
        then: Callable[[UnitOfWork, User], object] | None = None,
    ) -> User:
        custom, problems = self._check_custom(custom_fields, registering=registering)
        try:
            fields = validation.validate_user_fields(
                # No email: an account identified by its username alone.
                email=validation.NOT_GIVEN if email is None else email,
                username=username,
                name=name,
                password=password
                if password_required or password is not None
                else validation.NOT_GIVEN,
                settings=self._ctx.settings,
            )
        except ValidationError as exc:
            raise ValidationError({**problems, **exc.errors}) from None
        if problems:
            raise ValidationError(problems)
        if fields.email is None and fields.username is None and email is None:
            # One of the two identifies the account; the email is the usual one.
            raise ValidationError.single("email", "is required")
        password_hash = None if fields.password is None else self._ctx.hasher.hash(fields.password)
        user = self._new_user(fields, roles, status, password_hash, custom)
        with self._ctx.store.transaction() as tx:
            check_roles_exist(tx, roles)
            if actor is not None:
                self._require_grantable(tx, actor, roles)
            try:
                user = tx.users.add(user)
            except ConflictError as exc:
                if (
                    registering
                    and exc.field == "email"
                    and self._ctx.settings.registration_enumeration_safe
                ):
                    self._public_conflict(tx, user)
                raise
            if then is not None:  # in the same transaction as the insert
                then(tx, user)
            return user

    def _public_conflict(self, tx: UnitOfWork, user: User) -> None:
        """Raise the ``ConflictError`` of a username or unique custom field value
        of ``user`` that another account holds, if any.

        With ``Settings.registration_enumeration_safe`` a registration colliding
        on its email reports these instead: they are answered 409 in every
        mode, so were the email's conflict reported first, a taken handle sent
        with a guessed address would answer 202 exactly when the address is
        registered (OWASP ASVS 4.0.3 V2.2, OWASP Authentication Cheat Sheet
        "Account creation").
        """
        if user.username_key is not None and tx.users.get_by_username(user.username_key):
            raise conflict("users", "username_key")
        unique = [field.name for field in self._ctx.settings.custom_fields if field.unique]
        taken = _taken_unique(tx, unique, user, set())
        if taken is not None:
            raise custom_conflict(taken)

    def _check_custom(
        self, values: object, *, registering: bool = False, new: bool = True
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """A new account's custom field values and the problems with them (only
        the given ones unless ``new``); when ``registering``, fields that are
        not ``registrable`` may not be given."""
        declared = self._ctx.settings.custom_fields
        custom, problems = validation.check_custom_fields(
            declared, {} if values is None else values, new=new
        )
        if registering and isinstance(values, Mapping):
            for field in declared:
                if field.name in values and not field.registrable:
                    # Mass assignment (OWASP ASVS 4.0.3 V5.1.2): a visitor
                    # never sets an administrator's field.
                    problems[field.name] = ["cannot be set when registering"]
        return custom, problems

    def _require_grantable(
        self, tx: UnitOfWork, actor: Principal, roles: Iterable[str], target: User | None = None
    ) -> CompiledPolicy:
        """The delegation rule for handing ``roles`` to an account (and acting on
        ``target``); returns the role table it checked against."""
        table = role_table(tx)
        granted = table.effective_permissions(frozenset(roles) - SELF_SERVICE_ROLES)
        require_delegation(table, actor, grants=granted, target=target)
        return table

    def _new_user(
        self,
        fields: validation.ValidatedUserFields,
        roles: frozenset[str],
        status: UserStatus,
        password_hash: str | None,
        custom_fields: Mapping[str, Any],
    ) -> User:
        """A user to insert (its id comes from the store), created now."""
        now = self._ctx.clock()
        return User(
            id=0,
            email=fields.email,
            username=fields.username,
            name=fields.name,
            roles=roles,
            status=status,
            created_at=now,
            updated_at=now,
            password_hash=password_hash,
            custom_fields=custom_fields,
        )

    # -- reading --------------------------------------------------------------

    def get(self, actor: Principal, user_id: int) -> User:
        """A user by id (``users:read``, or ``users:read:own`` for oneself)."""
        check_id(user_id)
        self._ctx.policy.require(actor, "users:read", owner_id=user_id)
        user = None
        if in_id_range(user_id):
            with self._ctx.store.transaction(single_read=True) as tx:
                user = tx.users.get(user_id)
        return found(user, "User")

    def get_by_email(self, actor: Principal, email: str) -> User:
        """A user by email, case-insensitively (``users:read`` or oneself)."""
        if not isinstance(email, str):
            raise ValidationError.single("email", "must be a string")
        with self._ctx.store.transaction(single_read=True) as tx:
            user = tx.users.get_by_email(email_key(email.strip()))
        authorize_on_record(
            self._ctx.policy, actor, "users:read", None if user is None else user.id
        )
        return found(user, "User")

    def list(
        self,
        actor: Principal,
        *,
        page: int | None = None,
        per_page: int = 20,
        cursor: str | None = None,
        role: str | None = None,
        status: UserStatus | str | None = None,
        search: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
    ) -> Page[User]:
        """A page of users in id order (``users:read``).

        Walk with ``cursor`` (keyset, stable under inserts and deletes) or ask
        by ``page`` number (which also reports ``total``).  ``search`` matches
        a substring of email, username or name, case-insensitively.
        ``custom_fields`` keeps the users whose declared custom fields equal
        the given values exactly (after the field's normalization; type-exact,
        no case folding), e.g. ``custom_fields={"tenant_id": "acme"}``.
        """
        self._ctx.policy.require(actor, "users:read")
        errors: dict[str, list[str]] = {}
        if isinstance(per_page, bool) or not isinstance(per_page, int):
            errors["per_page"] = ["must be an integer"]
        elif not 1 <= per_page <= MAX_PER_PAGE:
            errors["per_page"] = [f"must be between 1 and {MAX_PER_PAGE}"]
        if page is not None and (
            isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 10**9
        ):
            errors["page"] = ["must be a positive integer"]
        if page is not None and cursor is not None:
            errors["cursor"] = ["give either page or cursor, not both"]
        if role is not None and not isinstance(role, str):
            errors["role"] = ["must be a string"]
        if search is not None and (not isinstance(search, str) or len(search) > MAX_SEARCH_LENGTH):
            errors["search"] = [f"must be a string of at most {MAX_SEARCH_LENGTH} characters"]
        status_value: UserStatus | None = None
        if status is not None:
            try:
                status_value = _status(status)
            except ValidationError as exc:
                errors.update(exc.errors)
        after: int | None = None
        if cursor is not None and "cursor" not in errors:
            try:
                after = decode_cursor(cursor)
            except ValidationError as exc:
                errors.update(exc.errors)
        custom: dict[str, Any] = {}
        if custom_fields is not None:
            custom, problems = validation.check_custom_fields(
                self._ctx.settings.custom_fields, custom_fields, new=False
            )
            errors.update(problems)
            for name, value in custom.items():
                if value is None:
                    errors[name] = ["must not be null in a filter"]
        if errors:
            raise ValidationError(errors)
        query = UserFilter(
            role=role, status=status_value, search=search or None, custom_fields=custom
        )
        with self._ctx.store.transaction(readonly=True) as tx:
            total = None
            if page is not None:
                total = tx.users.count(filter=query)
                offset = (page - 1) * per_page
                items = tx.users.list(after=None, limit=per_page + 1, filter=query, offset=offset)
            else:
                items = tx.users.list(after=after, limit=per_page + 1, filter=query)
        more = len(items) > per_page
        items = items[:per_page]
        return Page(
            items=items,
            per_page=per_page,
            page=page,
            total=total,
            next_cursor=encode_cursor(items[-1].id) if more and items else None,
        )

    def iter_all(self, actor: Principal, *, batch: int = MAX_PER_PAGE) -> Iterator[User]:
        """Every user, in id order, a page at a time (for exports and the CLI)."""
        cursor: str | None = None
        while True:
            page = self.list(actor, per_page=batch, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # -- updates --------------------------------------------------------------

    def update(
        self,
        actor: Principal,
        user_id: int,
        *,
        current_password: str | None = None,
        client: str | None = None,
        **changes: Unpack[UserChanges],
    ) -> User:
        """Change some of ``email``, ``username``, ``name``, ``roles``, ``status``,
        ``password`` (:class:`UserChanges`): ``users:update`` (or oneself with
        ``users:update:own``).

        Changing roles also needs ``roles:assign``; changing status needs
        ``users:update`` on others (an administrator).  A new email is
        unverified; deactivation revokes every session and API key.

        Changing one's own email, and anyone else's roles, needs fresh
        authentication: a login within ``Settings.fresh_auth_window`` or the
        actor's ``current_password`` (``ReauthenticationRequired`` otherwise);
        a wrong one counts as a failed login from ``client`` (the requester's
        address, as :meth:`usercore.services.auth.AuthService.login` takes it).
        The delegation rules apply (``PermissionDenied``): no roles granting
        what the actor does not hold, no change to a more privileged account;
        and the last active account holding ``*`` keeps it (``ConflictError``).
        An email change emits ``user.email_changed`` with the old address, so
        an app can tell the old mailbox.

        ``password`` sets a new password in the same transaction: one's own
        needs fresh authentication (as :meth:`change_password` needs the
        current one), anyone else's is an administrator's reset with the rules
        of :meth:`set_password` (``users:update`` on others, no account more
        privileged than the actor).  Either way every session and API key of
        the account is revoked and ``password.changed``/``password.reset`` is
        emitted (OWASP ASVS 4.0.3 V2.1.5, V3.3.3).
        """
        check_id(user_id)
        policy = self._ctx.policy
        policy.require(actor, "users:update", owner_id=user_id)
        unknown = sorted(set(changes) - UPDATABLE_FIELDS)
        if unknown:
            raise ValidationError(
                {field: ["is not a field that can be updated"] for field in unknown}
            )
        roles: frozenset[str] | None = None
        if "roles" in changes:
            roles = _role_names(changes["roles"])
        if roles is not None:
            policy.require(actor, "roles:assign")
        status = None
        if "status" in changes:
            policy.require(actor, "users:update")
            status = _status(changes["status"])
        oneself = user_id == actor.user_id
        new_password = "password" in changes
        if new_password and not oneself:
            policy.require(actor, "users:update")  # set_password's rule
        before = self._load(user_id) if new_password else None
        custom: dict[str, Any] = {}
        problems: dict[str, builtins.list[str]] = {}
        if "custom_fields" in changes:
            custom, problems = validation.check_custom_fields(
                self._ctx.settings.custom_fields, changes["custom_fields"], new=False
            )
        try:
            fields = validation.validate_user_fields(
                email=changes.get("email", validation.NOT_GIVEN),
                username=changes.get("username", validation.NOT_GIVEN),
                name=changes.get("name", validation.NOT_GIVEN),
                password=changes.get("password", validation.NOT_GIVEN),
                settings=self._ctx.settings,
                current_email=None if before is None else before.email,
                current_username=None if before is None else before.username,
            )
        except ValidationError as exc:
            raise ValidationError({**problems, **exc.errors}) from None
        if problems:
            raise ValidationError(problems)
        password_hash = None if fields.password is None else self._ctx.hasher.hash(fields.password)
        # Sending one's unchanged email back (a whole profile form) needs no
        # re-authentication; changing it does, checked again below under the lock.
        new_email = (
            oneself
            and fields.email is not None
            and fields.email != (before or self._load(user_id)).email
        )
        fresh = new_email or (roles is not None and not oneself) or (new_password and oneself)
        if fresh:
            require_fresh_auth(self._ctx, actor, current_password, client=client)
        with self._ctx.store.transaction() as tx:
            current = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            table = self._require_grantable(tx, actor, roles or (), target=current)
            updated = current
            if fields.email is not None and fields.email != current.email:
                if oneself and not fresh:
                    raise ReauthenticationRequired()  # the address changed meanwhile
                updated = attrs.evolve(updated, email=fields.email, email_verified=False)
            if "username" in changes:
                updated = attrs.evolve(updated, username=fields.username)
            if "name" in changes:
                updated = attrs.evolve(updated, name=fields.name)
            if roles is not None:
                check_roles_exist(tx, roles)
                updated = attrs.evolve(updated, roles=roles)
            if custom:
                self._require_custom_editable(actor, current, custom)
                updated = attrs.evolve(updated, custom_fields=updated.custom_fields.changed(custom))
            if status is not None and status is not current.status:
                updated = attrs.evolve(updated, status=status)
                if status is UserStatus.INACTIVE:
                    updated = self._ctx.sessions.end_sessions(tx, updated, one_time_tokens=True)
            if password_hash is not None:
                updated = self._ctx.sessions.with_password(tx, updated, password_hash)
            if updated == current:
                return current
            saved = tx.users.update(attrs.evolve(updated, updated_at=self._ctx.clock()))
            if holds_wildcard(table, current) and not holds_wildcard(table, saved):
                keep_a_wildcard_holder(tx, actor, "roles" if roles is not None else "status")
        changed = sorted(
            [
                field
                for field in ("email", "username", "name", "roles", "status")
                if getattr(saved, field) != getattr(current, field)
            ]
            + [
                name
                for name in custom
                if not same_value(saved.custom_fields.get(name), current.custom_fields.get(name))
            ]
        )
        self._ctx.events.emit("user.updated", user_id=user_id, actor=actor, fields=changed)
        if password_hash is not None:
            event = "password.changed" if oneself else "password.reset"
            self._ctx.events.emit(event, user_id=user_id, actor=actor)
        if saved.email != current.email:
            # For the app to notify the OLD address (OWASP ASVS 4.0.3 V2.2.3, V3.7.1).
            self._ctx.events.emit(
                "user.email_changed",
                user_id=user_id,
                actor=actor,
                old_email=current.email,
                new_email=saved.email,
            )
        if saved.roles != current.roles:
            self._ctx.events.emit(
                "user.roles_assigned", user_id=user_id, actor=actor, roles=sorted(saved.roles)
            )
        if saved.status is not current.status:
            self._ctx.events.emit(
                "user.status_changed", user_id=user_id, actor=actor, status=saved.status.value
            )
        return saved

    def _require_custom_editable(
        self, actor: Principal, current: User, custom: Mapping[str, Any]
    ) -> None:
        """Users change only their ``self_editable`` custom fields; an actor
        holding ``users:update`` (an administrator) changes any.  Sending an
        unchanged value back (a whole profile form) is no change."""
        if self._ctx.policy.is_allowed(actor, "users:update"):
            return
        declared = {field.name: field for field in self._ctx.settings.custom_fields}
        for name, value in custom.items():
            if not declared[name].self_editable and not same_value(
                value, current.custom_fields.get(name)
            ):
                raise PermissionDenied(
                    f"only an administrator may change {name}", permission="users:update"
                )

    def change_password(
        self,
        actor: Principal,
        user_id: int,
        *,
        current_password: str,
        new_password: str,
        client: str | None = None,
    ) -> None:
        """Change one's password, proving the current one (``users:update``/own).

        Every session of the user is revoked, including the one making the
        call (log in again with the new password).  A wrong current password
        is a ``ValidationError`` on ``current_password`` and counts toward the
        login lockout (``client`` as for ``auth.login``); ``AccountLocked``
        while a lock is in force.
        """
        check_id(user_id)
        self._ctx.policy.require(actor, "users:update", owner_id=user_id)
        with self._ctx.store.transaction(readonly=True) as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            # The privilege rule before the password is even looked at: no
            # "incorrect" vs "denied" oracle on a more privileged account, and
            # no guess charged to its lockout.
            require_delegation(role_table(tx), actor, target=user)
        if not isinstance(current_password, str):
            raise ValidationError.single("current_password", "must be a string")
        if not self._lockout.check_password(user, current_password, client=client):
            raise ValidationError.single("current_password", "is incorrect")
        self._store_password(actor, user, new_password, event="password.changed")

    def set_password(self, actor: Principal, user_id: int, new_password: str) -> None:
        """Set a user's password as an administrator (``users:update`` on anyone).

        Revokes every session and API key of the user and clears any lockout.
        ``PermissionDenied`` on an account more privileged than the actor.
        On the actor's own account it is a password change and needs fresh
        authentication like one (``ReauthenticationRequired``; an API key never
        is fresh): else a stolen administrator token or key takes the account.
        """
        check_id(user_id)
        self._ctx.policy.require(actor, "users:update")
        if user_id == actor.user_id:
            require_fresh_auth(self._ctx, actor)
        user = self._load(user_id)
        self._store_password(actor, user, new_password, event="password.reset")

    def _load(self, user_id: int) -> User:
        with self._ctx.store.transaction(readonly=True) as tx:
            return found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")

    def _store_password(
        self, actor: Principal | None, user: User, new_password: object, *, event: str
    ) -> User:
        def load(tx: UnitOfWork) -> User:
            current = found(tx.users.get(user.id), "User")
            if actor is not None:
                require_delegation(role_table(tx), actor, target=current)
            return current

        saved = self._ctx.sessions.replace_password(user, new_password, load=load)
        self._ctx.events.emit(event, user_id=user.id, actor=actor)
        return saved

    def set_status(self, actor: Principal, user_id: int, status: UserStatus | str) -> User:
        """Activate or deactivate an account (``users:update`` on anyone);
        deactivation revokes every session."""
        return self.update(actor, user_id, status=status)

    def assign_roles(
        self,
        actor: Principal,
        user_id: int,
        roles: Iterable[str],
        *,
        current_password: str | None = None,
        client: str | None = None,
    ) -> User:
        """Replace a user's roles (``users:update`` and ``roles:assign``).

        Unknown roles are a ``ValidationError``; the delegation and
        fresh-authentication rules of :meth:`update` apply (``client`` too).
        """
        return self.update(
            actor, user_id, roles=roles, current_password=current_password, client=client
        )

    def delete(self, actor: Principal, user_id: int) -> None:
        """Delete an account (``users:delete``, or oneself); revokes its tokens and keys.

        ``PermissionDenied`` on an account more privileged than the actor;
        ``ConflictError`` for the last active account holding ``*``.
        """
        check_id(user_id)
        self._ctx.policy.require(actor, "users:delete", owner_id=user_id)
        with self._ctx.store.transaction() as tx:
            user = found(tx.users.get(user_id) if in_id_range(user_id) else None, "User")
            table = role_table(tx)
            require_delegation(table, actor, target=user)
            self._ctx.sessions.end_sessions(tx, user, one_time_tokens=True)
            tx.users.delete(user_id)
            if holds_wildcard(table, user):
                keep_a_wildcard_holder(tx, actor, "user_id")
        self._ctx.events.emit("user.deleted", user_id=user_id, actor=actor)

    # -- bulk import ------------------------------------------------------------

    def import_users(
        self,
        actor: Principal,
        records: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 1000,
    ) -> ImportReport:
        """Create many users, keeping supported legacy password hashes as they are.

        Each record has ``email`` or ``username`` (or both) and optional
        ``name``, ``roles``, ``status``, ``email_verified`` (a boolean: the
        address was verified where the record comes from, as ``usercore
        export`` writes it), and ``password`` (plain) or ``password_hash`` (a
        format :mod:`usercore.passwords` verifies; upgraded on first login).
        Invalid records are reported, duplicates skipped; each batch is one
        transaction, so a batch is written whole or not at all.  Needs
        ``users:create`` and ``roles:assign``.
        """
        self._ctx.policy.require(actor, "users:create")
        self._ctx.policy.require(actor, "roles:assign")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError.single("batch_size", "must be a positive integer")
        created = skipped = 0
        errors: builtins.list[tuple[int, ValidationError]] = []
        seen: set[str] = set()
        batch: list[tuple[int, User]] = []
        domains = validation.EmailDomainCache()  # each domain's IDNA checks run once
        for index, record in enumerate(records):
            try:
                user = self._import_record(record, domains)
            except ValidationError as exc:
                errors.append((index, exc))
                continue
            keys = set() if user.email_key is None else {"e:" + user.email_key}
            if user.username_key is not None:
                keys.add("u:" + user.username_key)
            if keys & seen:
                skipped += 1
                continue
            seen |= keys
            batch.append((index, user))
            if len(batch) >= batch_size:
                done, dupes, bad = self._write_batch(actor, batch)
                created, skipped = created + done, skipped + dupes
                errors.extend(bad)
                batch = []
        if batch:
            done, dupes, bad = self._write_batch(actor, batch)
            created, skipped = created + done, skipped + dupes
            errors.extend(bad)
        self._ctx.events.emit(
            "user.imported", actor=actor, created=created, skipped=skipped, failed=len(errors)
        )
        return ImportReport(created=created, skipped=skipped, errors=sorted(errors, key=_first))

    def _import_record(self, record: object, domains: validation.EmailDomainCache) -> User:
        if not isinstance(record, Mapping):
            raise ValidationError.single("record", "must be a mapping")
        allowed = {
            "email",
            "email_verified",
            "username",
            "name",
            "roles",
            "role",
            "status",
            "password",
            "password_hash",
        }
        # Custom fields are top-level keys, as User.to_public() writes them.
        declared = {field.name for field in self._ctx.settings.custom_fields}
        unknown = sorted(str(key) for key in record if key not in allowed and key not in declared)
        problems: dict[str, list[str]] = {key: ["is not a known field"] for key in unknown}
        if "password" in record and "password_hash" in record:
            problems["password"] = ["give either password or password_hash, not both"]
        password_hash = record.get("password_hash")
        scheme = (
            self._ctx.hasher.identify(password_hash) if isinstance(password_hash, str) else None
        )
        if password_hash is not None and scheme is None:
            problems["password_hash"] = ["is not a supported password hash format"]
        elif scheme == "bcrypt" and not bcrypt_available():
            # Stored, it would fail every login of its user (and count toward lockout).
            problems["password_hash"] = [
                "is a bcrypt hash, which needs the bcrypt package: pip install 'usercore[bcrypt]'"
            ]
        roles: frozenset[str] = frozenset({"user"})
        try:
            if "roles" in record:
                roles = _role_names(record["roles"])
            elif "role" in record:
                roles = _role_names([record["role"]], field="role")
        except ValidationError as exc:
            problems.update(exc.errors)
        status = UserStatus.ACTIVE
        try:
            if record.get("status") is not None:
                status = _status(record["status"])
        except ValidationError as exc:
            problems.update(exc.errors)
        verified = record.get("email_verified", False)
        if not isinstance(verified, bool):
            problems["email_verified"] = ["must be true or false"]
        elif verified and record.get("email") is None:
            problems["email_verified"] = ["needs an email"]
        email = record.get("email")
        try:
            fields = validation.validate_user_fields(
                # No email: an account identified by its username alone.
                email=validation.NOT_GIVEN if email is None else email,
                username=record.get("username"),
                name=record.get("name"),
                password=record["password"]
                if record.get("password") is not None
                else validation.NOT_GIVEN,
                settings=self._ctx.settings,
                email_domains=domains,
            )
        except ValidationError as exc:
            for field, messages in exc.errors.items():
                problems.setdefault(field, []).extend(messages)
        custom, custom_problems = self._check_custom(
            {key: value for key, value in record.items() if key in declared}
        )
        for field, messages in custom_problems.items():
            problems.setdefault(field, []).extend(messages)
        if email is None and record.get("username") is None:
            # One of the two identifies the account; the email is the usual one.
            problems.setdefault("email", []).append("is required")
        if problems:
            raise ValidationError(problems)
        if fields.password is not None:
            password_hash = self._ctx.hasher.hash(fields.password)
        user = self._new_user(fields, roles, status, password_hash, custom)
        return attrs.evolve(user, email_verified=True) if verified else user

    def _write_batch(
        self, actor: Principal, batch: Sequence[tuple[int, User]]
    ) -> tuple[int, int, builtins.list[tuple[int, ValidationError]]]:
        """Insert one batch in one transaction: (created, skipped, errors)."""
        for _attempt in range(3):
            errors: builtins.list[tuple[int, ValidationError]] = []
            fresh: builtins.list[User] = []
            skipped = 0
            try:
                with self._ctx.store.transaction() as tx:
                    self._require_grantable(
                        tx, actor, frozenset().union(*(user.roles for _, user in batch))
                    )
                    known_roles = {role.name for role in tx.roles.list()}
                    unique = [f.name for f in self._ctx.settings.custom_fields if f.unique]
                    claimed: set[tuple[str, type, object]] = set()
                    keys = [(user.email_key, user.username_key) for _, user in batch]
                    emails_taken, usernames_taken = tx.users.taken_keys(
                        (email for email, _ in keys if email is not None),
                        (username for _, username in keys if username is not None),
                    )
                    for (index, user), (email, username) in zip(batch, keys, strict=True):
                        missing = sorted(user.roles - known_roles)
                        if missing:
                            errors.append(
                                (
                                    index,
                                    ValidationError(
                                        {"roles": [f"unknown role {r!r}" for r in missing]}
                                    ),
                                )
                            )
                        elif email in emails_taken or username in usernames_taken:
                            skipped += 1
                        elif (taken := _taken_unique(tx, unique, user, claimed)) is not None:
                            errors.append((index, ValidationError.single(taken, _TAKEN_BY_ANOTHER)))
                        else:
                            fresh.append(user)
                    if fresh:
                        tx.users.add_many(fresh)
            except ConflictError:
                # Another writer inserted one of these between our check and the
                # insert (possible on PostgreSQL); the batch rolled back whole:
                # check again and retry.
                continue
            return len(fresh), skipped, errors
        raise ConflictError("The import kept colliding with concurrent writes; try again.")


def _first(item: tuple[int, ValidationError]) -> int:
    return item[0]


_TAKEN_BY_ANOTHER = "is already taken by another account"


def _taken_unique(
    tx: UnitOfWork, unique: Sequence[str], user: User, claimed: set[tuple[str, type, object]]
) -> str | None:
    """The first unique custom field whose value ``user`` would share with a
    stored account or one earlier in the import (``claimed``, which gains
    ``user``'s values when there is none)."""
    mine = [
        (name, type(value), value)
        for name in unique
        if (value := user.custom_fields.get(name)) is not None
    ]
    for name, _, value in mine:
        if (name, type(value), value) in claimed or tx.users.list(
            after=None, limit=1, filter=UserFilter(custom_fields={name: value})
        ):
            return name
    claimed.update(mine)
    return None
