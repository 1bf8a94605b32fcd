"""Password hashing: argon2id for every new hash, verify-and-upgrade for legacy ones.

New hashes are Argon2id (RFC 9106 §4 recommends the ``id`` variant) made by
argon2-cffi with the parameters of ``Settings.argon2_profile`` (default: the
RFC 9106 §4 "SECOND RECOMMENDED option", ``argon2.profiles.RFC_9106_LOW_MEMORY``:
t=3, m=64 MiB, p=4).  :meth:`PasswordHasher.verify` has the shape of pwdlib's
``verify_and_update``: it returns ``(matched, new_hash_or_None)`` and the caller
stores the new hash in the same transaction as the successful login, which is
how outdated parameters and legacy formats (Django, Werkzeug, bcrypt) are
upgraded (OWASP Password Storage Cheat Sheet, "Upgrading Legacy Hashes").

Unicode: usercore's own hashes are made from the NFKC form of the password
(NIST SP 800-63B §5.1.1.2 recommends normalizing before hashing), so the same
password typed on two keyboards verifies.  A legacy hash is checked against the
password exactly as given, because that is what the system which made it
hashed; once it matches, the upgrade stores the NFKC form like any other hash.
Each stored hash is checked exactly once, never "as given, then normalized".

Nothing here logs or raises with a password or a hash in the message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib.util
import logging
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import argon2
from argon2.exceptions import VerificationError, VerifyMismatchError

from usercore.errors import Overloaded

if TYPE_CHECKING:
    from usercore.settings import Settings

__all__ = ["SUPPORTED_SCHEMES", "HashLimiter", "PasswordHasher", "bcrypt_available"]

_log = logging.getLogger("usercore.passwords")

#: Every scheme :meth:`PasswordHasher.identify` can name, usercore's own first.
#: Only ``"argon2"`` is ever produced; the others are verified and upgraded.
SUPPORTED_SCHEMES: tuple[str, ...] = (
    "argon2",
    "bcrypt",
    "django_argon2",
    "django_pbkdf2_sha256",
    "werkzeug_pbkdf2",
    "werkzeug_scrypt",
)

# Limits on the cost a stored hash may ask for.  A hash that exceeds them is
# treated as corrupt (a mismatch): a hash carries its own cost parameters, so
# a crafted or imported one could otherwise make each login attempt burn
# minutes of CPU or gigabytes of memory (CWE-400, uncontrolled resource
# consumption).  Each limit is a few seconds of work at most on current hardware.
_MAX_HASH_LENGTH = 1024
_MAX_PBKDF2_ITERATIONS = 10_000_000
_MAX_SCRYPT_BYTES = 256 * 1024 * 1024  # 128 * N * r * p, Werkzeug's own estimate
_MAX_ARGON2_MEMORY_KIB = 256 * 1024  # raised to the profile's memory_cost if larger
_MAX_ARGON2_TIME_COST = 16  # idem
_MAX_ARGON2_PARALLELISM = 64  # idem; argon2-cffi runs one thread per lane
_MIN_BCRYPT_ROUNDS = 4
_MAX_BCRYPT_ROUNDS = 15

# bcrypt only reads the first 72 bytes of a password (bcrypt 5 raises, older
# versions truncate silently); a longer password must not match its prefix.
_BCRYPT_MAX_PASSWORD_BYTES = 72

# What Werkzeug's check_password_hash assumes when a stored method omits its
# parameters (werkzeug/security.py, DEFAULT_PBKDF2_ITERATIONS in Werkzeug 3.1,
# and scrypt's n=2**15, r=8, p=1).  Werkzeug itself always writes them out.
_WERKZEUG_DEFAULT_PBKDF2_ITERATIONS = 1_000_000
_WERKZEUG_DEFAULT_SCRYPT = (2**15, 8, 1)
_WERKZEUG_PBKDF2_DIGESTS = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})

# The PHC string format as argon2 writes it; the version is absent from hashes
# of the v1.0 era (old Django "argon2$argon2i$m=...").  ASCII only by construction.
_ARGON2_HASH = re.compile(
    r"\$argon2(?:id|i|d)\$(?:v=(?:16|19)\$)?"
    r"m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,10})"
    r"\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+"
)
# Modular crypt format of bcrypt: $2b$<cost>$<22 chars salt><31 chars hash>.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}")
_DECIMAL = re.compile(r"[0-9]{1,10}")


class _Unverifiable(Exception):
    """A stored hash could not be checked (e.g. bcrypt is not installed)."""


# What a check may raise when the stored hash is unusable: a mismatch for the
# caller, after dummy work.  ValueError covers argon2's InvalidHashError,
# UnicodeEncodeError, binascii.Error and hashlib's parameter errors.
_UNVERIFIABLE_ERRORS = (_Unverifiable, VerificationError, ValueError, TypeError, OverflowError)


class _Candidate(NamedTuple):
    """A stored hash that parsed, with the function that checks a password against it."""

    scheme: str
    check: Callable[[str], bool]


def _require_str(password: object) -> None:
    if not isinstance(password, str):
        # The type only, never the value.
        raise TypeError(f"password must be str, not {type(password).__name__}")


def _nfkc(password: str) -> str:
    # NIST SP 800-63B §5.1.1.2: "the verifier SHOULD apply the Normalization
    # Process for Stabilized Strings using either the NFKC or NFKD
    # normalization defined in Section 12.1 of Unicode Standard Annex 15".
    return unicodedata.normalize("NFKC", password)


def _utf8(text: str) -> bytes:
    # Strict: a lone surrogate raises UnicodeEncodeError (a ValueError), which
    # a check reports as "unverifiable".
    return text.encode("utf-8")


def _decimal(text: str) -> int | None:
    return int(text) if _DECIMAL.fullmatch(text) else None


class HashLimiter:
    """At most ``slots`` password hashes at once in this process, and a short queue.

    Each Argon2 hash holds its ``memory_cost`` (64 MiB by default) and keeps a
    core busy, so an unbounded number at once is a memory and CPU exhaustion
    (CWE-400; issue: a login flood took 2.5 GB and hung every request).  A
    caller gets a slot at once when one is free; otherwise it waits in a queue
    of at most ``queue`` callers for at most ``timeout`` seconds.  A full queue
    or a wait past the timeout raises :class:`~usercore.errors.Overloaded`
    (HTTP 503 + ``Retry-After``) and the hash is never started: a client that
    waited past its deadline has likely given up, and its work would only delay
    the next ones.

    Slots are re-entrant per thread: a hash made while the thread already
    holds a slot (a verify that upgrades the hash, a dummy verify after an
    unusable hash, or a caller that took the slot around a whole login) does
    not take a second one, and so can never deadlock on itself.
    """

    def __init__(self, slots: int, *, queue: int, timeout: float, retry_after: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"HashLimiter slots must be at least 1, got {slots}")
        if queue < 0 or timeout < 0:
            raise ValueError("HashLimiter queue and timeout must not be negative")
        self.slots = slots
        self.queue = queue
        self.timeout = timeout
        self.retry_after = max(1, retry_after)
        self._condition = threading.Condition(threading.Lock())
        self._busy = 0
        self._waiting = 0
        self._refused = 0
        self._held = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> HashLimiter:
        """The limiter of ``settings.max_concurrent_hashes``, ``hash_queue_length``
        and ``hash_queue_timeout``."""
        timeout = settings.hash_queue_timeout.total_seconds()
        return cls(
            settings.max_concurrent_hashes,
            queue=settings.hash_queue_length,
            timeout=timeout,
            retry_after=max(1, int(timeout + 0.999)),
        )

    def __repr__(self) -> str:
        return f"HashLimiter(slots={self.slots}, queue={self.queue}, timeout={self.timeout})"

    @property
    def busy(self) -> int:
        """Slots in use now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now."""
        return self._waiting

    @property
    def refused(self) -> int:
        """How many callers were refused with ``Overloaded`` since the limiter was made."""
        return self._refused

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a hashing slot for the ``with`` block; ``Overloaded`` if none comes in time."""
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        self._acquire()
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            with self._condition:
                self._busy -= 1
                self._condition.notify()

    def _acquire(self) -> None:
        with self._condition:
            if self._busy < self.slots and not self._waiting:
                self._busy += 1
                return
            if self._waiting >= self.queue:
                self._refused += 1
                raise Overloaded(retry_after=self.retry_after)
            self._waiting += 1
            deadline = time.monotonic() + self.timeout
            try:
                while self._busy >= self.slots:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._refused += 1
                        # Pass the turn on: another waiter may fit in a freed slot.
                        self._condition.notify()
                        raise Overloaded(retry_after=self.retry_after)
                    self._condition.wait(remaining)
            finally:
                self._waiting -= 1
            self._busy += 1


class PasswordHasher:
    """Hashes passwords with Argon2id and verifies current and legacy hashes.

    Built from an ``argon2.Parameters`` profile (``Settings.argon2_profile``).
    Thread-safe; one instance per :class:`~usercore.Settings` is enough.

    * :meth:`hash` makes a new Argon2id hash (RFC 9106) of the NFKC-normalized
      password (NIST SP 800-63B §5.1.1.2).
    * :meth:`verify` returns ``(matched, new_hash_or_None)``: a new hash when
      the stored one used other parameters or a legacy format, to be saved by
      the caller (OWASP Password Storage Cheat Sheet, "Upgrading Legacy Hashes").
    * :meth:`dummy_verify` spends the work of a real verify, for logins of
      unknown accounts (OWASP Authentication Cheat Sheet, "Authentication and
      Error Messages").

    With a :class:`HashLimiter` (``from_settings`` makes one), every hash and
    verify, dummy ones included, runs in one of its slots, so at most
    ``Settings.max_concurrent_hashes`` run at once and a caller beyond the
    short queue gets :class:`~usercore.errors.Overloaded` instead of waiting.
    Without one (the command line's import workers bound themselves) nothing
    is limited.

    Raises ``TypeError`` for a profile that is not an ``argon2.Parameters`` and
    ``ValueError`` for a profile that is not Argon2id.
    """

    def __init__(
        self,
        profile: argon2.Parameters = argon2.profiles.RFC_9106_LOW_MEMORY,
        *,
        limiter: HashLimiter | None = None,
    ) -> None:
        if not isinstance(profile, argon2.Parameters):
            raise TypeError(f"profile must be an argon2.Parameters, not {type(profile).__name__}")
        if profile.type is not argon2.Type.ID:
            raise ValueError("usercore hashes with Argon2id (RFC 9106 §4): use a Type.ID profile")
        self._profile = profile
        self._argon2 = argon2.PasswordHasher.from_parameters(profile)
        # A profile heavier than the DoS limits must still verify its own hashes.
        self._max_memory_kib = max(_MAX_ARGON2_MEMORY_KIB, profile.memory_cost)
        self._max_time_cost = max(_MAX_ARGON2_TIME_COST, profile.time_cost)
        self._max_parallelism = max(_MAX_ARGON2_PARALLELISM, profile.parallelism)
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()
        self._limiter = limiter

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHasher:
        """A hasher with ``settings.argon2_profile``, limited by its :class:`HashLimiter`."""
        return cls(settings.argon2_profile, limiter=HashLimiter.from_settings(settings))

    @property
    def limiter(self) -> HashLimiter | None:
        """The limiter every hash and verify goes through, if any."""
        return self._limiter

    def slot(self) -> contextlib.AbstractContextManager[None]:
        """A hashing slot held for a ``with`` block (re-entrant); ``Overloaded`` if
        none is free in time.  A caller that must not start other work when the
        hash would be refused (the login charges a guess before checking it)
        takes the slot first; without a limiter this does nothing."""
        if self._limiter is None:
            return contextlib.nullcontext()
        return self._limiter.slot()

    @property
    def profile(self) -> argon2.Parameters:
        """The argon2 parameters new hashes are made with."""
        return self._profile

    def __repr__(self) -> str:
        return f"PasswordHasher(profile={self._profile!r})"

    # -- public API -------------------------------------------------------

    def hash(self, password: str) -> str:
        """Hash ``password`` with Argon2id and the profile, after NFKC normalization.

        Returns the PHC-format string (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``).
        Raises ``TypeError`` if ``password`` is not a ``str`` and ``ValueError``
        if it cannot be encoded as UTF-8 (a lone surrogate).  Length and
        content rules are the password policy's business, not this method's.
        """
        _require_str(password)
        try:
            secret = _utf8(_nfkc(password))
        except UnicodeEncodeError:
            raise ValueError("password is not valid Unicode text (lone surrogate)") from None
        with self.slot():
            return self._argon2.hash(secret)

    def verify(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Check ``password`` against ``stored_hash`` and say whether to replace the hash.

        Returns ``(True, None)`` for a match with a current hash, ``(True,
        new_hash)`` for a match with a hash made with other argon2 parameters
        or in a legacy format (always upgraded to Argon2id), and ``(False,
        None)`` otherwise.  The caller saves ``new_hash`` with the login.

        A ``None``, empty, unknown, corrupt or out-of-bounds stored hash (see
        the DoS limits in ``docs/passwords.md``), and a bcrypt hash while
        ``bcrypt`` is not installed, are mismatches, never exceptions; they
        cost the same argon2 work as a real verify (:meth:`dummy_verify`) so
        timing does not reveal them.  Raises ``TypeError`` only if
        ``password`` is not a ``str``, and ``Overloaded`` when the limiter
        has no slot in time (before any work).
        """
        _require_str(password)
        with self.slot():
            return self._verify(stored_hash, password)

    def _verify(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        candidate = self._candidate(stored_hash)
        if candidate is None:
            _log.debug("stored password hash is missing or of an unknown format")
        else:
            try:
                matched = candidate.check(password)
            except _UNVERIFIABLE_ERRORS as exc:
                _log.debug(
                    "stored %s hash could not be checked (%s)", candidate.scheme, type(exc).__name__
                )
            else:
                if not matched:
                    return False, None
                if candidate.scheme == "argon2" and not self.needs_rehash(stored_hash):
                    return True, None
                return True, self.hash(password)
        self.dummy_verify(password)
        return False, None

    def needs_rehash(self, stored_hash: str | None) -> bool:
        """Whether ``stored_hash`` should be replaced the next time the password is known.

        ``False`` only for a well-formed Argon2 hash made with exactly this
        hasher's profile (argon2-cffi ``check_needs_rehash``: type, version,
        costs, salt and hash lengths).  ``True`` for other parameters, for
        every legacy format and for missing or unusable hashes.
        """
        candidate = self._candidate(stored_hash)
        if candidate is None or candidate.scheme != "argon2" or not isinstance(stored_hash, str):
            return True
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except ValueError:  # argon2.exceptions.InvalidHashError
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend the work of verifying ``password`` against a current hash, and discard it.

        Verifies against the hash of a random password, made once per hasher
        (on first use) with the same profile, so the cost equals a real
        :meth:`verify` of an up-to-date hash.  Call it when there is no hash to
        check (unknown account), so the response time does not tell a missing
        account from a wrong password (OWASP Authentication Cheat Sheet).
        Raises ``TypeError`` if ``password`` is not a ``str``, and ``Overloaded``
        when the hasher's limiter has no slot in time; never anything else.
        """
        _require_str(password)
        # "surrogatepass": even text that hash() would refuse costs a verify.
        secret = _nfkc(password).encode("utf-8", "surrogatepass")
        with self.slot(), contextlib.suppress(VerificationError):
            self._argon2.verify(self._get_dummy_hash(), secret)

    def identify(self, stored_hash: str | None) -> str | None:
        """Name the scheme of ``stored_hash`` (one of :data:`SUPPORTED_SCHEMES`), or ``None``.

        ``None`` means :meth:`verify` can never match it: missing, unknown,
        malformed, or asking for more work than the DoS limits allow.  A
        bcrypt hash is named even when ``bcrypt`` is not installed.  Useful to
        validate imported hashes (``users.import_users``) before storing them.
        """
        candidate = self._candidate(stored_hash)
        return None if candidate is None else candidate.scheme

    # -- parsing ----------------------------------------------------------

    def _get_dummy_hash(self) -> str:
        dummy = self._dummy_hash
        if dummy is None:
            with self._dummy_lock:
                if self._dummy_hash is None:
                    self._dummy_hash = self._argon2.hash(secrets.token_bytes(32))
                dummy = self._dummy_hash
        return dummy

    def _candidate(self, stored_hash: object) -> _Candidate | None:
        """Parse ``stored_hash``: its scheme and checker, or ``None`` if it is unusable.

        Parsing does no hashing; every cost parameter is bounded here.
        """
        if not isinstance(stored_hash, str) or not 0 < len(stored_hash) <= _MAX_HASH_LENGTH:
            return None
        # Every supported format names its scheme before the first "$"
        # (Django "pbkdf2_sha256$", Werkzeug "scrypt:...$"); PHC and
        # modular-crypt strings start with "$" and name it right after.
        method = stored_hash.split("$", 1)[0]
        if method == "":
            if stored_hash.startswith("$argon2"):
                return self._parse_argon2(stored_hash)
            if stored_hash.startswith("$2"):
                return _parse_bcrypt(stored_hash)
            return None
        if method == "argon2":
            return self._parse_django_argon2(stored_hash)
        if method == "pbkdf2_sha256":
            return _parse_django_pbkdf2(stored_hash)
        kind = method.split(":", 1)[0]
        if kind == "pbkdf2":
            return _parse_werkzeug_pbkdf2(stored_hash)
        if kind == "scrypt":
            return _parse_werkzeug_scrypt(stored_hash)
        return None

    def _argon2_in_bounds(self, encoded: str) -> bool:
        match = _ARGON2_HASH.fullmatch(encoded)
        if match is None:
            return False
        memory_cost, time_cost, parallelism = (int(group) for group in match.groups())
        # RFC 9106 §3.1: p >= 1, t >= 1, m >= 8 * p (KiB).
        return (
            1 <= time_cost <= self._max_time_cost
            and 1 <= parallelism <= self._max_parallelism
            and 8 * parallelism <= memory_cost <= self._max_memory_kib
        )

    def _argon2_matches(self, encoded: str, secret: bytes) -> bool:
        # argon2-cffi picks the variant (id, i, d) from the hash and compares
        # in constant time inside libargon2 (argon2_verify).
        try:
            return self._argon2.verify(encoded, secret)
        except VerifyMismatchError:
            return False

    def _parse_argon2(self, stored_hash: str) -> _Candidate | None:
        """usercore's own format, the PHC string argon2-cffi writes; NFKC password."""
        if not self._argon2_in_bounds(stored_hash):
            return None

        def check(password: str) -> bool:
            return self._argon2_matches(stored_hash, _utf8(_nfkc(password)))

        return _Candidate("argon2", check)

    def _parse_django_argon2(self, stored_hash: str) -> _Candidate | None:
        """Django's ``Argon2PasswordHasher``: ``"argon2"`` + the PHC string.

        Django (``django/contrib/auth/hashers.py``) verifies by handing
        ``"$" + rest`` to argon2-cffi; so do we.  Covers ``argon2id`` and the
        ``argon2i`` hashes of Django < 3.2, with or without ``v=``.
        """
        encoded = stored_hash[len("argon2") :]
        if not self._argon2_in_bounds(encoded):
            return None

        def check(password: str) -> bool:
            return self._argon2_matches(encoded, _utf8(password))

        return _Candidate("django_argon2", check)


def _parse_django_pbkdf2(stored_hash: str) -> _Candidate | None:
    """Django's ``PBKDF2PasswordHasher``: ``pbkdf2_sha256$<iterations>$<salt>$<base64>``.

    The digest is ``base64(PBKDF2-HMAC-SHA256(utf8(password), utf8(salt),
    iterations))`` (RFC 8018 §5.2); Django refuses an empty salt, so do we.
    """
    parts = stored_hash.split("$", 3)
    if len(parts) != 4:
        return None
    _, iterations_text, salt, digest = parts
    iterations = _decimal(iterations_text)
    if iterations is None or not 1 <= iterations <= _MAX_PBKDF2_ITERATIONS or not salt:
        return None

    def check(password: str) -> bool:
        derived = hashlib.pbkdf2_hmac("sha256", _utf8(password), _utf8(salt), iterations)
        return hmac.compare_digest(base64.b64encode(derived), _utf8(digest))

    return _Candidate("django_pbkdf2_sha256", check)


def _werkzeug_parts(stored_hash: str) -> tuple[list[str], str, str] | None:
    # werkzeug.security.check_password_hash: method, salt, hashval = pwhash.split("$", 2)
    parts = stored_hash.split("$", 2)
    if len(parts) != 3:
        return None
    method, salt, hashval = parts
    return method.split(":")[1:], salt, hashval


def _parse_werkzeug_pbkdf2(stored_hash: str) -> _Candidate | None:
    """Werkzeug's ``pbkdf2:<digest>[:<iterations>]$<salt>$<hex>``.

    As ``werkzeug.security``: the salt is used as its UTF-8 bytes, the digest
    is lowercase hex, a missing digest means sha256 and missing iterations
    mean Werkzeug 3.1's default (1,000,000).
    """
    parsed = _werkzeug_parts(stored_hash)
    if parsed is None:
        return None
    args, salt, hashval = parsed
    digest_name, iterations = "sha256", _WERKZEUG_DEFAULT_PBKDF2_ITERATIONS
    if len(args) > 2:
        return None
    if args:
        digest_name = args[0]
    if len(args) == 2:
        parsed_iterations = _decimal(args[1])
        if parsed_iterations is None:
            return None
        iterations = parsed_iterations
    if digest_name not in _WERKZEUG_PBKDF2_DIGESTS:
        return None
    if not 1 <= iterations <= _MAX_PBKDF2_ITERATIONS:
        return None

    def check(password: str) -> bool:
        derived = hashlib.pbkdf2_hmac(digest_name, _utf8(password), _utf8(salt), iterations)
        return hmac.compare_digest(derived.hex().encode("ascii"), _utf8(hashval))

    return _Candidate("werkzeug_pbkdf2", check)


def _parse_werkzeug_scrypt(stored_hash: str) -> _Candidate | None:
    """Werkzeug's ``scrypt:<N>:<r>:<p>$<salt>$<hex>`` (its default since 3.0).

    scrypt (RFC 7914) with a 64-byte key, as ``hashlib.scrypt`` computes it;
    a bare ``scrypt$...`` means Werkzeug's N=2**15, r=8, p=1.
    """
    parsed = _werkzeug_parts(stored_hash)
    if parsed is None:
        return None
    args, salt, hashval = parsed
    if not args:
        n, r, p = _WERKZEUG_DEFAULT_SCRYPT
    elif len(args) == 3 and all(_DECIMAL.fullmatch(arg) for arg in args):
        n, r, p = (int(arg) for arg in args)
    else:
        return None
    # RFC 7914 §2: N is a power of two greater than 1; r, p positive.
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * n * r * p > _MAX_SCRYPT_BYTES:
        return None
    # What OpenSSL allocates: 128*r*p for B plus 128*r*(N+2) for V.
    maxmem = 128 * r * (n + p + 2)

    def check(password: str) -> bool:
        derived = hashlib.scrypt(_utf8(password), salt=_utf8(salt), n=n, r=r, p=p, maxmem=maxmem)
        return hmac.compare_digest(derived.hex().encode("ascii"), _utf8(hashval))

    return _Candidate("werkzeug_scrypt", check)


#: What to tell an operator whose store holds bcrypt hashes but who lacks the package.
BCRYPT_MISSING_MESSAGE = (
    "bcrypt password hashes cannot be verified: the bcrypt package is not installed "
    "(pip install 'usercore[bcrypt]')"
)


def bcrypt_available() -> bool:
    """Whether bcrypt hashes can be verified here (the ``bcrypt`` package imports)."""
    return importlib.util.find_spec("bcrypt") is not None


# Acquired once and never released: the first failed import logs, later ones do not.
_bcrypt_missing_logged = threading.Lock()


def _import_bcrypt() -> ModuleType:
    try:
        import bcrypt  # optional: usercore[bcrypt]
    except ImportError:
        # Logged once per process, at WARNING: every login of such a user
        # fails as a mismatch (and counts toward lockout) until it is installed.
        if _bcrypt_missing_logged.acquire(blocking=False):
            _log.warning(BCRYPT_MISSING_MESSAGE)
        raise _Unverifiable("bcrypt is not installed") from None
    return bcrypt


def _parse_bcrypt(stored_hash: str) -> _Candidate | None:
    """bcrypt's ``$2b$`` (and ``$2a$``, PHP's ``$2y$``) modular crypt format.

    Checked with the ``bcrypt`` package when it is installed (imported here,
    not at module import); otherwise every check is "unverifiable".
    """
    match = _BCRYPT_HASH.fullmatch(stored_hash)
    if match is None or not _MIN_BCRYPT_ROUNDS <= int(match[1]) <= _MAX_BCRYPT_ROUNDS:
        return None

    def check(password: str) -> bool:
        bcrypt = _import_bcrypt()
        secret = _utf8(password)
        if len(secret) > _BCRYPT_MAX_PASSWORD_BYTES:
            raise _Unverifiable("longer than bcrypt's 72 bytes")
        # bcrypt.checkpw compares in constant time.
        return bool(bcrypt.checkpw(secret, stored_hash.encode("ascii")))

    return _Candidate("bcrypt", check)
