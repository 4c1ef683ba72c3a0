"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), keeping every message it accepts.

    with MailServer() as mail:                       # plain SMTP
        ...; assert mail.messages[0]["Subject"] == "..."
    with MailServer(tls=self_signed_cert(tmp_path), login=("user", "secret")) as mail:
        ...                                          # STARTTLS required, then AUTH LOGIN/PLAIN
"""
from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is in the test extra")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a certificate for the STARTTLS test")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class MailServer:
    def __init__(self, *, tls: tuple[Path, Path] | None = None, login: tuple[str, str] | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []   # (MAIL FROM, RCPT TO)
        self.logins: list[str] = []
        self.used_tls: list[bool] = []
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            kwargs.update(tls_context=context, require_starttls=True)
        if login is not None:
            kwargs.update(authenticator=self._authenticator(*login), auth_required=True,
                          auth_require_tls=tls is not None)
        self.port = _free_port()
        self._controller = aiosmtpd_controller.Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.used_tls.append(session.ssl is not None)
        return "250 OK"

    def _authenticator(self, user: str, password: str) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
            if ok:
                with self._lock:
                    self.logins.append(user)
            return AuthResult(success=ok, handled=False)
        return check

    def close(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
