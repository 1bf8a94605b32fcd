"""Helpers shared by the command-line tests: run ``main`` in process, open the
database the command used."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from usercore import SYSTEM, Settings, UserCore, cli

PASSWORD = "correct horse battery staple"


class Runner:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr(
                sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
            )
        status = cli.main(list(argv))
        out, err = self.capsys.readouterr()
        return status, out, err


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    return Runner(capsys, monkeypatch)


def open_db(path: Path) -> UserCore:
    return UserCore.open(f"sqlite:///{path}", settings=Settings(secret_key="k" * 40))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "users.db"
    with open_db(path) as core:
        core.users.create(SYSTEM, email="root@example.com", roles=["admin"])
        core.users.create(
            SYSTEM, email="ada@example.com", username="Ada", name="Ada Lovelace", password=PASSWORD
        )
        core.users.create(SYSTEM, email="bob@example.com", status="inactive")
    return path
