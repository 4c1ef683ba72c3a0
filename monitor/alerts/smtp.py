"""Sending e-mail through the configured SMTP server.

STARTTLS is required unless `smtp.starttls = false`; a server that does not offer it is an
error, never a silent fall-back to plain text, and a login without TLS is refused. The user
name and password come from environment variables named in the config; they never appear in
a message or a log line.
"""
from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from monitor.alerts.errors import DeliveryError
from monitor.config import SmtpSettings


def send_mail(smtp: SmtpSettings, message: EmailMessage, *, base_dir: Path) -> None:
    """Hand `message` to the SMTP server; raise DeliveryError if it is not accepted for every recipient."""
    where = f"smtp://{smtp.host}:{smtp.port}"
    username, password = credentials(smtp)
    if username and not smtp.starttls:
        raise DeliveryError(where, "refusing to log in without STARTTLS (smtp.starttls = false would send "
                                   "the password in clear)")
    try:
        context = _tls_context(smtp, base_dir) if smtp.starttls else None
        with smtplib.SMTP(smtp.host, smtp.port, timeout=float(smtp.timeout)) as client:
            client.ehlo()
            if context is not None:
                if not client.has_extn("starttls"):
                    raise DeliveryError(where, "the server does not offer STARTTLS (smtp.starttls = true)")
                client.starttls(context=context)
                client.ehlo()
            if username:
                client.login(username, password or "")
            refused = client.send_message(message)
    except DeliveryError:
        raise
    except smtplib.SMTPRecipientsRefused as e:
        raise DeliveryError(where, f"every recipient refused: {', '.join(e.recipients)}") from e
    except smtplib.SMTPAuthenticationError as e:
        raise DeliveryError(where, f"login refused (SMTP {e.smtp_code})") from e
    except (smtplib.SMTPException, ssl.SSLError, OSError) as e:
        raise DeliveryError(where, f"{type(e).__name__}: {e}") from e
    if refused:
        raise DeliveryError(where, f"recipients refused: {', '.join(sorted(refused))}")


def credentials(smtp: SmtpSettings) -> tuple[str | None, str | None]:
    """The user name and password from the environment variables the config names."""
    values: list[str | None] = []
    for key in ("username_env", "password_env"):
        name = getattr(smtp, key)
        if name is None:
            values.append(None)
            continue
        value = os.environ.get(name)
        if not value:
            raise DeliveryError(f"smtp://{smtp.host}:{smtp.port}",
                                f"environment variable {name} (smtp.{key}) is not set")
        values.append(value)
    return values[0], values[1]


def _tls_context(smtp: SmtpSettings, base_dir: Path) -> ssl.SSLContext:
    if smtp.ca_file is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str((base_dir / smtp.ca_file).resolve()))
