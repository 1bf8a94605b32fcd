"""docs/mail.md's Python blocks run, in order, as one program: the page never rots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "mail.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_mail_page_has_examples() -> None:
    assert len(BLOCKS) >= 5


def test_the_mail_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the FileMailer example writes ./outbox
    namespace: dict[str, object] = {"__name__": "docs_mail"}
    for index, block in enumerate(BLOCKS):
        code = compile(block, f"docs/mail.md[python block {index}]", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation, on purpose
    assert list((tmp_path / "outbox").glob("*.eml"))
