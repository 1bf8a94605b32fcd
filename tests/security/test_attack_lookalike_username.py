"""Adversarial tests of the username look-alike check (UTS #39 §5.4, optional
detection of nonspacing marks; OWASP ASVS 4.0.3 V5.1.4 / V2.1 look-alikes).

The single-script check lets combining marks through (Devanagari needs them),
and marks have no script of their own.  After NFKC, a mark still standing
after a Latin, Greek or Cyrillic letter is one that does not compose with it,
and some are all but invisible there: ``ali\\u0307ce`` (an ``i`` with a second
dot above) and ``j\\u0307ohn`` registered beside ``alice`` and ``john``.
Those alphabets write every letter they use precomposed, so a leftover mark
on them is refused; scripts whose writing needs marks keep them.
"""

from __future__ import annotations

import pytest

from usercore import SYSTEM, UserCore, ValidationError
from usercore.validation import username_problems

from ..services.conftest import PASSWORD

STRAY_MARKS = [
    "ali\u0307ce",  # i + COMBINING DOT ABOVE: a doubled, invisible dot
    "j\u0307ohn",  # j + COMBINING DOT ABOVE
    "bo\u0335b",  # COMBINING SHORT STROKE OVERLAY
]
STILL_FINE = [
    "Jose\u0301",  # composes to José
    "nguye\u0302\u0303n",  # composes to nguyễn
    "नमस्ते",  # Devanagari vowel signs and virama are marks
    "joão",
]


@pytest.mark.parametrize("username", STRAY_MARKS)
def test_a_stray_combining_mark_is_refused(username: str) -> None:
    assert username_problems(username)


@pytest.mark.parametrize("username", STILL_FINE)
def test_marks_that_compose_or_that_a_script_needs_are_fine(username: str) -> None:
    assert [] == username_problems(username)


def test_the_dotted_clone_does_not_register_beside_the_original(core: UserCore) -> None:
    core.users.register(email="alice@example.com", password=PASSWORD, username="alice")
    with pytest.raises(ValidationError) as raised:
        core.users.register(email="x@example.com", password=PASSWORD, username="ali\u0307ce")
    assert "username" in raised.value.errors
    assert [user.username for user in core.users.list(SYSTEM).items] == ["alice"]
