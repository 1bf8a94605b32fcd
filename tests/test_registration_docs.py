"""docs/registration.md's Python blocks run, in order, as one program: the page never rots."""

from __future__ import annotations

import re
from pathlib import Path

from .pages import ROOT, python_blocks, run_in_order

PAGE = "docs/registration.md"


def test_the_registration_page_has_examples() -> None:
    assert len(python_blocks(PAGE)) >= 5


def test_the_registration_page_examples_run() -> None:
    run_in_order(PAGE, "docs_registration")


def test_the_error_line_shown_is_the_one_the_command_prints(tmp_path: Path) -> None:
    import pytest

    from usercore import cli

    shown = re.search(
        r"^usercore: error: --permissions permissions\.json: (.*)$",
        (ROOT / PAGE).read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert shown is not None
    path = tmp_path / "permissions.json"
    path.write_text('["*"]', encoding="utf-8")
    with pytest.raises(cli.CommandError) as caught:
        cli.read_permissions(str(path))
    assert f"--permissions {path}: {shown.group(1)}" == str(caught.value)
    assert cli.EXIT_USAGE == caught.value.status
