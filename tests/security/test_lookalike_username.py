"""Mixed-script look-alike usernames are refused (issue 12 item 16).

Unicode Technical Standard #39 §5.1 (mixed-script detection, "Highly
Restrictive"): ``аlice`` with a Cyrillic ``а`` must not register beside
``alice``.  A username keeps to one script; Latin may mix only with the
scripts Chinese, Japanese and Korean writing mixes with it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usercore import SYSTEM, UserCore, ValidationError
from usercore.validation import is_single_script, username_problems

from ..services.conftest import PASSWORD

LOOK_ALIKES = [
    "\u0430lice",  # Cyrillic а
    "p\u0430ypal",  # Cyrillic а
    "\u03bfscar",  # Greek ο
    "admin\u0131\u0455",  # dotless ı (Latin) and Cyrillic ѕ
    "\u0561dmin",  # Armenian ա
    "\u13a0dmin",  # Cherokee Ꭰ
    "alice\u0663",  # Arabic-Indic digit three
]
SINGLE_SCRIPT = ["alice", "алиса", "ελένη", "joão", "straße", "ユーザー", "yamada太郎", "kim김철수"]


@pytest.mark.parametrize("username", LOOK_ALIKES)
def test_a_mixed_script_username_is_refused(username: str) -> None:
    assert any("scripts" in problem for problem in username_problems(username))


@pytest.mark.parametrize("username", SINGLE_SCRIPT)
def test_a_single_script_username_is_fine(username: str) -> None:
    assert [] == username_problems(username)


def test_a_cyrillic_look_alike_cannot_register_beside_the_latin_name(core: UserCore) -> None:
    core.users.register(email="alice@example.com", password=PASSWORD, username="alice")
    with pytest.raises(ValidationError) as raised:
        core.users.register(email="mallory@example.com", password=PASSWORD, username="\u0430lice")
    assert "username" in raised.value.errors
    # Nor can an existing account rename itself to one.
    eve = core.users.register(email="eve@example.com", password=PASSWORD, username="eve")
    with pytest.raises(ValidationError):
        core.users.update(SYSTEM, eve.id, username="\u0430lice")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=30))
def test_ascii_is_always_single_script(text: str) -> None:
    assert is_single_script(text)
