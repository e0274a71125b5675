"""`Mailer`: the one interface for sending mail, and its two implementations.

- `SmtpMailer` sends through the configured SMTP server with aiosmtplib.
- `LogMailer`, used when no SMTP host is configured, writes the message to the
  log and reports it as not sent (the outbox records it so). Signed links in
  the body are credentials, and logs are read by more people than mailboxes:
  their tokens are cut out (`redact_links`), the rest is logged as written.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from config.settings import Settings
from server.logs import get_logger
from server.serving.redact import redact_links

log = get_logger("frameflow.mail")

# Upper bound for one SMTP conversation (connect, TLS, auth, DATA).
SMTP_TIMEOUT_SECONDS = 30.0


class MailError(Exception):
    """The message was not accepted; worth trying again later."""


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> bool:
        """True when handed to an SMTP server, False when only logged.
        Raises MailError when sending failed."""
        ...


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self.hostname = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username or None
        self.password = settings.smtp_password or None
        self.use_tls = settings.smtp_tls
        # aiosmtplib refuses both at once; implicit TLS already encrypts. When
        # asked for, STARTTLS is required (never "if offered"): a stripped
        # capability must fail the send, not downgrade it to plain text.
        self.start_tls = settings.smtp_starttls and not settings.smtp_tls

    async def send(self, message: EmailMessage) -> bool:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=SMTP_TIMEOUT_SECONDS,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(str(exc) or type(exc).__name__) from exc
        return True


class LogMailer:
    async def send(self, message: EmailMessage) -> bool:
        log.info(
            "mail_not_sent",
            reason="no SMTP server configured (FRAMEFLOW_SMTP_HOST)",
            to=message["To"],
            subject=message["Subject"],
            body=redact_links(message.get_content()),
        )
        return False


def make_mailer(settings: Settings) -> Mailer:
    return SmtpMailer(settings) if settings.smtp_host else LogMailer()
