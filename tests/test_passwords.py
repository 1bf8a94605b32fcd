"""Password hashing: argon2id round trips, rehash-on-login, legacy formats, dummy work.

Legacy hashes come from the real libraries (Django, Werkzeug, bcrypt) with
cheap parameters.  Every test uses argon2's CHEAPEST profile except the one
marked slow that pins the production default (RFC 9106 low-memory).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import argon2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from usercore import Settings
from usercore import passwords as passwords_module
from usercore.passwords import SUPPORTED_SCHEMES, PasswordHasher

CHEAPEST = argon2.profiles.CHEAPEST
PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stapler"


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(CHEAPEST)


class Counter:
    """Wraps a callable and counts its calls (and keeps their arguments)."""

    def __init__(self, wrapped: Callable[..., Any]) -> None:
        self.wrapped = wrapped
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        return self.wrapped(*args, **kwargs)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # Patched onto a class, bind like a function: calls record (self, ...).
        return self if instance is None else functools.partial(self, instance)


@pytest.fixture
def dummy_calls(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> Counter:
    counter = Counter(hasher.dummy_verify)
    monkeypatch.setattr(hasher, "dummy_verify", counter)
    return counter


@pytest.fixture
def argon2_verify_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts every call to argon2-cffi's own ``PasswordHasher.verify``."""
    counter = Counter(argon2.PasswordHasher.verify)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counter)
    return counter


def assert_upgraded(hasher: PasswordHasher, result: tuple[bool, str | None], password: str) -> None:
    """A legacy match returns a current argon2id hash that verifies without a further upgrade."""
    matched, new_hash = result
    assert matched is True
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$")
    assert CHEAPEST == argon2.extract_parameters(new_hash)
    assert (True, None) == hasher.verify(new_hash, password)


# -- argon2id, usercore's own format -------------------------------------


def test_a_hash_verifies_with_its_password_and_needs_no_rehash(hasher: PasswordHasher) -> None:
    stored = hasher.hash(PASSWORD)

    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert (True, None) == hasher.verify(stored, PASSWORD)
    assert hasher.needs_rehash(stored) is False
    assert "argon2" == hasher.identify(stored)


def test_a_wrong_password_does_not_match(hasher: PasswordHasher) -> None:
    assert (False, None) == hasher.verify(hasher.hash(PASSWORD), WRONG)


def test_each_hash_has_its_own_salt(hasher: PasswordHasher) -> None:
    assert hasher.hash(PASSWORD) != hasher.hash(PASSWORD)


def test_a_changed_profile_returns_a_new_hash_with_the_new_parameters(
    hasher: PasswordHasher,
) -> None:
    stored = hasher.hash(PASSWORD)
    stronger_profile = dataclasses.replace(CHEAPEST, time_cost=2)
    stronger = PasswordHasher(stronger_profile)

    matched, new_hash = stronger.verify(stored, PASSWORD)

    assert matched is True
    assert new_hash is not None
    assert stronger_profile == argon2.extract_parameters(new_hash)
    assert (True, None) == stronger.verify(new_hash, PASSWORD)
    assert stronger.needs_rehash(stored) is True
    assert stronger.needs_rehash(new_hash) is False


def test_a_changed_profile_does_not_upgrade_on_a_wrong_password(hasher: PasswordHasher) -> None:
    stronger = PasswordHasher(dataclasses.replace(CHEAPEST, time_cost=2))

    assert (False, None) == stronger.verify(hasher.hash(PASSWORD), WRONG)


def test_other_argon2_variants_verify_and_upgrade_to_argon2id(hasher: PasswordHasher) -> None:
    argon2i = argon2.PasswordHasher.from_parameters(
        dataclasses.replace(CHEAPEST, type=argon2.Type.I)
    ).hash(PASSWORD)

    assert_upgraded(hasher, hasher.verify(argon2i, PASSWORD), PASSWORD)
    assert hasher.needs_rehash(argon2i) is True


def test_a_profile_above_the_dos_limits_still_verifies_its_own_hashes() -> None:
    heavy = PasswordHasher(dataclasses.replace(CHEAPEST, time_cost=20))
    stored = heavy.hash(PASSWORD)

    assert (True, None) == heavy.verify(stored, PASSWORD)
    assert PasswordHasher(CHEAPEST).identify(stored) is None


@given(
    password=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
)
def test_any_text_round_trips_in_every_normalization_form(password: str) -> None:
    import unicodedata

    hasher = PasswordHasher(CHEAPEST)
    stored = hasher.hash(password)

    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        assert (True, None) == hasher.verify(stored, unicodedata.normalize(form, password))


# -- Unicode ----------------------------------------------------------------


def test_argon2_hashes_are_of_the_nfkc_form(hasher: PasswordHasher) -> None:
    """NIST SP 800-63B §5.1.1.2: compatibility forms of one password are one password."""
    ligature = hasher.hash("\ufb01le-ＡＢＣ-x²")  # "ﬁle-ＡＢＣ-x²"

    assert (True, None) == hasher.verify(ligature, "file-ABC-x2")
    assert (True, None) == hasher.verify(hasher.hash("file-ABC-x2"), "\ufb01le-ＡＢＣ-x²")
    assert (True, None) == hasher.verify(hasher.hash("Cafe\u0301"), "Caf\u00e9")


def test_legacy_hashes_check_the_password_as_given_then_upgrade_to_nfkc(
    hasher: PasswordHasher, django_hashers: Any
) -> None:
    """A legacy system hashed the raw text; only that text matches, once, before the upgrade."""
    django_hash = make_django_hash(django_hashers, "\ufb01le-password", FastDjangoPBKDF2)

    assert (False, None) == hasher.verify(django_hash, "file-password")
    matched, upgraded = hasher.verify(django_hash, "\ufb01le-password")
    assert matched is True
    assert upgraded is not None
    assert (True, None) == hasher.verify(upgraded, "file-password")


def test_a_lone_surrogate_cannot_be_hashed_and_never_matches(
    hasher: PasswordHasher, dummy_calls: Counter
) -> None:
    with pytest.raises(ValueError, match="not valid Unicode") as excinfo:
        hasher.hash("pass\ud800word")
    assert "\ud800" not in str(excinfo.value)

    assert (False, None) == hasher.verify(hasher.hash(PASSWORD), "pass\ud800word")
    assert 1 == len(dummy_calls.calls)


# -- wrong types --------------------------------------------------------------


@pytest.mark.parametrize("password", [b"bytes-password", None, 12345, ["list"]])
def test_a_password_that_is_not_str_is_a_type_error(hasher: PasswordHasher, password: Any) -> None:
    stored = hasher.hash(PASSWORD)

    for call in (
        lambda: hasher.hash(password),
        lambda: hasher.verify(stored, password),
        lambda: hasher.dummy_verify(password),
    ):
        with pytest.raises(TypeError, match="password must be str") as excinfo:
            call()
        assert "bytes-password" not in str(excinfo.value)


def test_a_profile_must_be_argon2id_parameters() -> None:
    with pytest.raises(ValueError, match="Argon2id"):
        PasswordHasher(dataclasses.replace(CHEAPEST, type=argon2.Type.I))
    with pytest.raises(TypeError, match=r"argon2\.Parameters"):
        PasswordHasher({"time_cost": 1})  # type: ignore[arg-type]


# -- legacy: Django --------------------------------------------------------------


@pytest.fixture(scope="module")
def django_hashers() -> Any:
    """django.contrib.auth.hashers with settings configured once for the whole run."""
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            PASSWORD_HASHERS=[
                "django.contrib.auth.hashers.PBKDF2PasswordHasher",
                "django.contrib.auth.hashers.Argon2PasswordHasher",
            ]
        )
    from django.contrib.auth import hashers

    return hashers


def _django_hasher_classes() -> tuple[type[Any], type[Any]]:
    try:
        from django.contrib.auth.hashers import Argon2PasswordHasher, PBKDF2PasswordHasher
    except ImportError:
        return object, object

    class FastPBKDF2(PBKDF2PasswordHasher):  # type: ignore[misc]
        iterations = 1000

    class FastArgon2(Argon2PasswordHasher):  # type: ignore[misc]
        time_cost = 1
        memory_cost = 64
        parallelism = 1

    return FastPBKDF2, FastArgon2


FastDjangoPBKDF2, FastDjangoArgon2 = _django_hasher_classes()


def make_django_hash(hashers: Any, password: str, hasher_class: type[Any]) -> str:
    stored: str = hashers.make_password(password, hasher=hasher_class())
    return stored


@pytest.mark.parametrize(
    ("hasher_class", "scheme", "prefix"),
    [
        (FastDjangoPBKDF2, "django_pbkdf2_sha256", "pbkdf2_sha256$1000$"),
        (FastDjangoArgon2, "django_argon2", "argon2$argon2id$v=19$m=64,t=1,p=1$"),
    ],
)
def test_django_hashes_verify_and_upgrade(
    hasher: PasswordHasher,
    django_hashers: Any,
    hasher_class: type[Any],
    scheme: str,
    prefix: str,
) -> None:
    stored = make_django_hash(django_hashers, PASSWORD, hasher_class)
    assert stored.startswith(prefix)

    assert scheme == hasher.identify(stored)
    assert hasher.needs_rehash(stored) is True
    assert_upgraded(hasher, hasher.verify(stored, PASSWORD), PASSWORD)
    assert (False, None) == hasher.verify(stored, WRONG)


@pytest.mark.parametrize("version_field", ["v=19$", "v=16$", ""])
def test_old_django_argon2i_hashes_verify_and_upgrade(
    hasher: PasswordHasher, django_hashers: Any, version_field: str
) -> None:
    """Django < 3.2 wrote argon2i; the oldest ones have no ``v=`` (Argon2 v1.0)."""
    version = 16 if version_field != "v=19$" else 19
    raw = argon2.low_level.hash_secret(
        PASSWORD.encode(),
        b"somesaltsomesalt",
        time_cost=2,
        memory_cost=64,
        parallelism=1,
        hash_len=16,
        type=argon2.Type.I,
        version=version,
    ).decode("ascii")
    stored = "argon2" + raw.replace(f"v={version}$", version_field)
    assert ("v=" in stored) == bool(version_field)
    # Django itself accepts it, so it is a real Django hash.
    assert django_hashers.Argon2PasswordHasher().verify(PASSWORD, stored) is True

    assert "django_argon2" == hasher.identify(stored)
    assert_upgraded(hasher, hasher.verify(stored, PASSWORD), PASSWORD)
    assert (False, None) == hasher.verify(stored, WRONG)


def test_a_django_unusable_password_never_matches(
    hasher: PasswordHasher, django_hashers: Any, dummy_calls: Counter
) -> None:
    unusable = django_hashers.make_password(None)

    assert hasher.identify(unusable) is None
    assert (False, None) == hasher.verify(unusable, unusable)
    assert 1 == len(dummy_calls.calls)


# -- legacy: Werkzeug ---------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["pbkdf2:sha256:1000", "pbkdf2:sha512:1000", "pbkdf2:sha1:1000", "scrypt"]
)
def test_werkzeug_hashes_verify_and_upgrade(hasher: PasswordHasher, method: str) -> None:
    security = pytest.importorskip("werkzeug.security")
    stored = security.generate_password_hash(PASSWORD, method=method)
    scheme = "werkzeug_scrypt" if method == "scrypt" else "werkzeug_pbkdf2"
    if method == "scrypt":
        assert stored.startswith("scrypt:32768:8:1$")

    assert scheme == hasher.identify(stored)
    assert_upgraded(hasher, hasher.verify(stored, PASSWORD), PASSWORD)
    assert (False, None) == hasher.verify(stored, WRONG)


@pytest.mark.parametrize("method", ["pbkdf2:sha256", "pbkdf2"])
def test_werkzeug_pbkdf2_without_iterations_means_werkzeugs_default(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """``pbkdf2:sha256$salt$hex`` is read the way Werkzeug 3.1's check_password_hash reads it."""
    security = pytest.importorskip("werkzeug.security")
    assert (
        security.DEFAULT_PBKDF2_ITERATIONS == passwords_module._WERKZEUG_DEFAULT_PBKDF2_ITERATIONS
    )
    # Same meaning, cheaper number: patch both sides to 1000 iterations.
    monkeypatch.setattr(security, "DEFAULT_PBKDF2_ITERATIONS", 1000)
    monkeypatch.setattr(passwords_module, "_WERKZEUG_DEFAULT_PBKDF2_ITERATIONS", 1000)
    full = security.generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    stored = full.replace("pbkdf2:sha256:1000$", method + "$")
    assert security.check_password_hash(stored, PASSWORD) is True

    assert "werkzeug_pbkdf2" == hasher.identify(stored)
    assert_upgraded(hasher, hasher.verify(stored, PASSWORD), PASSWORD)
    assert (False, None) == hasher.verify(stored, WRONG)


def test_werkzeug_salts_are_used_as_utf8_text(hasher: PasswordHasher) -> None:
    security = pytest.importorskip("werkzeug.security")
    digest, method = security._hash_internal("pbkdf2:sha256:1000", "sél-ß", PASSWORD)
    stored = f"{method}$sél-ß${digest}"
    assert security.check_password_hash(stored, PASSWORD) is True

    assert_upgraded(hasher, hasher.verify(stored, PASSWORD), PASSWORD)


# -- legacy: bcrypt ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bcrypt_hash() -> str:
    bcrypt = pytest.importorskip("bcrypt")
    stored: str = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode("ascii")
    return stored


@pytest.mark.parametrize("prefix", ["$2b$", "$2a$", "$2y$"])
def test_bcrypt_hashes_verify_and_upgrade(
    hasher: PasswordHasher, bcrypt_hash: str, prefix: str
) -> None:
    stored = prefix + bcrypt_hash[len("$2b$") :]

    assert "bcrypt" == hasher.identify(stored)
    assert_upgraded(hasher, hasher.verify(stored, PASSWORD), PASSWORD)
    assert (False, None) == hasher.verify(stored, WRONG)


@pytest.mark.parametrize("unit", ["a", "é"])
def test_bcrypt_never_matches_a_password_longer_than_72_bytes(
    hasher: PasswordHasher, dummy_calls: Counter, unit: str
) -> None:
    """bcrypt reads 72 bytes; a longer password must not match its truncated prefix."""
    bcrypt = pytest.importorskip("bcrypt")
    fits = unit * (72 // len(unit.encode()))
    stored = bcrypt.hashpw(fits.encode(), bcrypt.gensalt(rounds=4)).decode("ascii")

    assert hasher.verify(stored, fits)[0] is True
    assert (False, None) == hasher.verify(stored, fits + unit)
    assert 1 == len(dummy_calls.calls)


def test_bcrypt_hashes_are_mismatches_with_dummy_work_when_bcrypt_is_missing(
    hasher: PasswordHasher,
    bcrypt_hash: str,
    dummy_calls: Counter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # makes "import bcrypt" fail

    assert "bcrypt" == hasher.identify(bcrypt_hash)
    assert (False, None) == hasher.verify(bcrypt_hash, PASSWORD)
    assert 1 == len(dummy_calls.calls)


# -- unusable stored hashes -----------------------------------------------------

CHEAP_ARGON2 = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$MTIzNA"
UNUSABLE_HASHES: dict[str, Any] = {
    "none": None,
    "empty": "",
    "garbage": "garbage",
    "only a dollar": "$",
    "bytes": b"$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$MTIzNA",
    "unknown scheme": "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
    "plain sha1": "sha1$salt$aaaa",
    "too long": "pbkdf2:sha256:1000$" + "s" * 2000 + "$abcd",
    # truncated formats
    "argon2 without digest": "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ",
    "argon2 without params": "$argon2id$v=19$",
    "argon2 digest too short": "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$MTI",
    "argon2 salt too short": "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$MTIzNA",
    "argon2 bad version": "$argon2id$v=20$m=8,t=1,p=1$c29tZXNhbHQ$MTIzNA",
    "argon2 m below 8p": "$argon2id$v=19$m=8,t=1,p=2$c29tZXNhbHQ$MTIzNA",
    "argon2 non-ascii": "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$MTIzNAé",
    "django argon2 truncated": "argon2$argon2id$v=19$m=8,t=1,p=1",
    "django pbkdf2 without digest": "pbkdf2_sha256$1000$salt",
    "django pbkdf2 empty salt": "pbkdf2_sha256$1000$$aGFzaA==",
    "django pbkdf2 zero iterations": "pbkdf2_sha256$0$salt$aGFzaA==",
    "django pbkdf2 signed iterations": "pbkdf2_sha256$+1000$salt$aGFzaA==",
    "werkzeug without digest": "pbkdf2:sha256:1000$salt",
    "werkzeug unknown digest": "pbkdf2:md5:1000$salt$abcd",
    "werkzeug too many args": "pbkdf2:sha256:1000:1$salt$abcd",
    "werkzeug spaced iterations": "pbkdf2:sha256: 1000$salt$abcd",
    "scrypt two args": "scrypt:16384:8$salt$abcd",
    "scrypt n not a power of two": "scrypt:1000:8:1$salt$abcd",
    "scrypt zero r": "scrypt:16384:0:1$salt$abcd",
    "bcrypt truncated": "$2b$04$hg2A6t6F9d3TXjVaLoLyneimyFOnXPRkMX/Uj6GamOD91",
    "bcrypt unknown minor": "$2x$04$hg2A6t6F9d3TXjVaLoLyneimyFOnXPRkMX/Uj6GamOD91.2PDmifK",
    "bcrypt rounds below 4": "$2b$03$hg2A6t6F9d3TXjVaLoLyneimyFOnXPRkMX/Uj6GamOD91.2PDmifK",
    # absurd costs (denial of service): must be refused before any hashing
    "django pbkdf2 1e8 iterations": "pbkdf2_sha256$100000000$salt$aGFzaA==",
    "django pbkdf2 huge iterations": "pbkdf2_sha256$9999999999$salt$aGFzaA==",
    "werkzeug 1e8 iterations": "pbkdf2:sha256:100000000$salt$abcd",
    "scrypt 1 GiB": "scrypt:1048576:8:1$salt$abcd",
    "scrypt huge p": "scrypt:16384:8:1000$salt$abcd",
    "argon2 4 GiB": "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$MTIzNA",
    "argon2 t=1000": "$argon2id$v=19$m=8,t=1000,p=1$c29tZXNhbHQ$MTIzNA",
    "argon2 p=255": "$argon2id$v=19$m=4096,t=1,p=255$c29tZXNhbHQ$MTIzNA",
    "django argon2 4 GiB": "argon2$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$MTIzNA",
    "bcrypt 31 rounds": "$2b$31$hg2A6t6F9d3TXjVaLoLyneimyFOnXPRkMX/Uj6GamOD91.2PDmifK",
}


@pytest.mark.parametrize("stored", UNUSABLE_HASHES.values(), ids=UNUSABLE_HASHES.keys())
def test_unusable_hashes_are_mismatches_after_dummy_work(
    hasher: PasswordHasher, dummy_calls: Counter, stored: Any
) -> None:
    assert (False, None) == hasher.verify(stored, PASSWORD)
    assert [(PASSWORD,)] == dummy_calls.calls
    assert hasher.needs_rehash(stored) is True


# Faults that only the argon2 C library finds, while hashing: identify() names
# them, verify() still refuses them.  Every other entry is refused by parsing.
FOUND_WHILE_HASHING = {"argon2 digest too short", "argon2 salt too short"}


@pytest.mark.parametrize("name", UNUSABLE_HASHES.keys())
def test_identify_refuses_malformed_and_out_of_bounds_hashes(
    hasher: PasswordHasher, name: str
) -> None:
    expected = "argon2" if name in FOUND_WHILE_HASHING else None

    assert expected == hasher.identify(UNUSABLE_HASHES[name])


def test_a_tampered_digest_is_a_plain_mismatch_after_real_work(
    hasher: PasswordHasher, dummy_calls: Counter
) -> None:
    stored = hasher.hash(PASSWORD)
    # Change a character inside the digest: the last one of an unpadded base64
    # digest carries unused bits, and changing only those changes nothing.
    at = len(stored) - 10
    tampered = stored[:at] + ("A" if stored[at] != "A" else "B") + stored[at + 1 :]

    assert (False, None) == hasher.verify(tampered, PASSWORD)
    assert [] == dummy_calls.calls


def test_no_password_or_hash_reaches_the_log(
    hasher: PasswordHasher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="usercore")
    secret_password = "s3cret-" + "p" * 20
    stored = hasher.hash(secret_password)
    for candidate in [stored, None, "garbage-hash-value", *UNUSABLE_HASHES.values()]:
        hasher.verify(candidate, secret_password)

    assert caplog.records, "the unusable hashes are logged (without content)"
    assert secret_password not in caplog.text
    assert stored.rsplit("$", 1)[1] not in caplog.text
    assert "garbage-hash-value" not in caplog.text


# -- dummy work ------------------------------------------------------------------


def test_dummy_verify_runs_one_argon2_verify_with_the_profile(
    hasher: PasswordHasher, argon2_verify_calls: Counter
) -> None:
    hasher.dummy_verify(PASSWORD)
    hasher.dummy_verify(WRONG)

    assert 2 == len(argon2_verify_calls.calls)
    dummy_hashes = {call[1] for call in argon2_verify_calls.calls}
    assert 1 == len(dummy_hashes), "one dummy hash per hasher"
    assert CHEAPEST == argon2.extract_parameters(dummy_hashes.pop())


def test_an_unknown_account_costs_one_argon2_verify_like_a_known_one(
    hasher: PasswordHasher, argon2_verify_calls: Counter
) -> None:
    stored = hasher.hash(PASSWORD)
    hasher.verify(stored, WRONG)
    hasher.verify(None, WRONG)

    real, dummy = argon2_verify_calls.calls
    assert argon2.extract_parameters(real[1]) == argon2.extract_parameters(dummy[1])


def test_the_dummy_hash_is_made_once_under_concurrency(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    hash_calls = Counter(argon2.PasswordHasher.hash)
    monkeypatch.setattr(argon2.PasswordHasher, "hash", hash_calls)
    barrier = threading.Barrier(8)

    def login_unknown() -> None:
        barrier.wait()
        hasher.dummy_verify(PASSWORD)

    threads = [threading.Thread(target=login_unknown) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 1 == len(hash_calls.calls)


def test_dummy_verify_accepts_text_that_cannot_be_hashed(hasher: PasswordHasher) -> None:
    hasher.dummy_verify("lone \ud800 surrogate")  # no UnicodeEncodeError


# -- scheme names and defaults -----------------------------------------------


def test_supported_schemes_are_the_names_identify_returns() -> None:
    assert (
        "argon2",
        "bcrypt",
        "django_argon2",
        "django_pbkdf2_sha256",
        "werkzeug_pbkdf2",
        "werkzeug_scrypt",
    ) == SUPPORTED_SCHEMES


def test_from_settings_uses_the_settings_profile() -> None:
    hasher = PasswordHasher.from_settings(Settings(argon2_profile=CHEAPEST))

    assert CHEAPEST == hasher.profile
    assert "PasswordHasher(profile=Parameters(" in repr(hasher)


@pytest.fixture
def default_hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.mark.slow
def test_the_default_profile_is_rfc_9106_low_memory(default_hasher: PasswordHasher) -> None:
    """RFC 9106 §4 SECOND RECOMMENDED option: Argon2id, t=3, m=64 MiB, p=4, 128-bit salt."""
    expected = argon2.Parameters(
        type=argon2.Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=3,
        memory_cost=64 * 1024,
        parallelism=4,
    )
    assert expected == default_hasher.profile == Settings().argon2_profile
    stored = default_hasher.hash(PASSWORD)

    assert expected == argon2.extract_parameters(stored)
    assert (True, None) == default_hasher.verify(stored, PASSWORD)
    # A CHEAPEST hash (as the tests make) is upgraded to the production parameters.
    matched, upgraded = default_hasher.verify(PasswordHasher(CHEAPEST).hash(PASSWORD), PASSWORD)
    assert matched is True
    assert upgraded is not None
    assert expected == argon2.extract_parameters(upgraded)
