"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, plain, STARTTLS or implicit TLS.

The TLS certificate is self-signed, made per test session with ``cryptography``
for ``localhost`` and ``127.0.0.1``; clients trust it through an
``ssl.SSLContext`` loaded with that certificate and nothing else.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret-smtp-pa$$word"


@attrs.frozen
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only (hostname checks stay on)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def make_certificate(directory: Path) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@attrs.frozen
class Received:
    """One mail as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated_as: str | None

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content: str = body.get_content()  # type: ignore[attr-defined]
        return content.replace("\r\n", "\n")


class Inbox:
    """aiosmtpd handler and authenticator: keeps every mail and checks one account."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if session.authenticated else None
        with self._lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    authenticated_as=login.decode() if isinstance(login, bytes) else login,
                )
            )
        return "250 OK"

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with self._lock:
            self.logins.append(mechanism)
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == (
            SMTP_PASSWORD.encode()
        )
        # handled=False: aiosmtpd answers the failure (535) itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen
class Server:
    host: str
    port: int
    inbox: Inbox


@contextmanager
def smtp_server(
    *,
    starttls: Certificate | None = None,
    implicit_tls: Certificate | None = None,
    auth: bool = False,
) -> Iterator[Server]:
    """Run an SMTP server until the block ends.

    ``starttls`` offers STARTTLS with that certificate (and then requires it),
    ``implicit_tls`` speaks TLS from the first byte, ``auth`` requires AUTH
    (which aiosmtpd only accepts over TLS).
    """
    inbox = Inbox()
    kwargs: dict[str, Any] = {"server_hostname": "localhost"}
    if starttls is not None:
        kwargs.update(tls_context=starttls.server_context(), require_starttls=True)
    if implicit_tls is not None:
        kwargs["ssl_context"] = implicit_tls.server_context()
    if auth:
        # aiosmtpd only counts STARTTLS as TLS; on an implicit-TLS port every
        # byte is already encrypted, so its "AUTH needs TLS" check is moot there.
        kwargs.update(
            authenticator=inbox, auth_required=True, auth_require_tls=implicit_tls is None
        )
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield Server("127.0.0.1", controller.port, inbox)
    finally:
        controller.stop()
