"""The recovery domain's records: a single-use token mailed to an address."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

Purpose = Literal["verify_email", "password_reset"]
VERIFY_EMAIL: Final = "verify_email"
PASSWORD_RESET: Final = "password_reset"  # noqa: S105 - a name, not a secret

# Outbox events (`notification_log.event`) of the account mails.
MAIL_VERIFY_EMAIL: Final = "account.verify_email"
MAIL_PASSWORD_RESET: Final = "account.password_reset"  # noqa: S105
MAIL_ALREADY_REGISTERED: Final = "account.already_registered"
# To the old address when the email changes: a notice, with no link in it.
MAIL_EMAIL_CHANGED: Final = "account.email_changed"


@dataclass(frozen=True)
class AccountToken:
    id: uuid.UUID
    user_id: uuid.UUID
    purpose: str
    email: str
    expires_at: datetime
    used_at: datetime | None
    created_at: datetime
