"""Fixtures for the mail tests: a self-signed certificate and SMTP servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mail.smtp_server import Certificate, Server, make_certificate, smtp_server


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def plain_server() -> Iterator[Server]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def starttls_server(certificate: Certificate) -> Iterator[Server]:
    """STARTTLS required, AUTH required (over TLS only)."""
    with smtp_server(starttls=certificate, auth=True) as server:
        yield server


@pytest.fixture
def implicit_tls_server(certificate: Certificate) -> Iterator[Server]:
    with smtp_server(implicit_tls=certificate, auth=True) as server:
        yield server
