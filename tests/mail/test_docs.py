"""docs/mail.md's Python blocks run, in order, as one program: the page never rots."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..pages import python_blocks, run_in_order

PAGE = "docs/mail.md"


def test_the_mail_page_has_examples() -> None:
    assert len(python_blocks(PAGE)) >= 5


def test_the_mail_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the FileMailer example writes ./outbox
    run_in_order(PAGE, "docs_mail")
    assert list((tmp_path / "outbox").glob("*.eml"))
