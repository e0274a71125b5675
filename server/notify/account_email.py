"""Compose the account mails (pure): verification, password reset, "already registered",
"your email was changed".

Links point at the page, which reads the token from the fragment (`/#verify=…`,
`/#reset=…`): a fragment is never sent to a server, so the token stays out of
access logs and `Referer` headers. The log form of a mail cuts the token out
(`server.serving.redact`). The notices ("already registered", "email changed")
carry no token: whoever reads them can do nothing with them but sign in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.recovery.model import (
    MAIL_ALREADY_REGISTERED,
    MAIL_EMAIL_CHANGED,
    MAIL_PASSWORD_RESET,
    MAIL_VERIFY_EMAIL,
)

ACCOUNT_EVENTS = frozenset(
    {MAIL_VERIFY_EMAIL, MAIL_PASSWORD_RESET, MAIL_ALREADY_REGISTERED, MAIL_EMAIL_CHANGED}
)


def masked_address(email: str) -> str:
    """`n***@example.com`: enough for the owner to recognise, not to write to."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _validity(facts: Mapping[str, Any]) -> str:
    seconds = int(facts.get("valid_seconds") or 0)
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    return f"{max(1, seconds // 60)} minutes"


def verify_link(base_url: str, token: str) -> str:
    return f"{base_url}/#verify={token}"


def reset_link(base_url: str, token: str) -> str:
    return f"{base_url}/#reset={token}"


def account_mail(
    event: str, facts: Mapping[str, Any], *, base_url: str, token: str | None
) -> tuple[str, str]:
    """(subject, plain-text body) of an account mail; `token` for those with a link."""
    if event == MAIL_VERIFY_EMAIL:
        assert token is not None
        lines = [
            "Please confirm that this is your email address for Frameflow by opening:",
            "",
            f"  {verify_link(base_url, token)}",
            "",
            f"The link works once and for {_validity(facts)}. If you did not ask for a",
            "Frameflow account, you can ignore this email.",
        ]
        return "Frameflow: confirm your email address", "\n".join(lines) + "\n"
    if event == MAIL_PASSWORD_RESET:
        assert token is not None
        lines = [
            "Someone (hopefully you) asked to reset the password of your Frameflow account.",
            "To choose a new password, open:",
            "",
            f"  {reset_link(base_url, token)}",
            "",
            f"The link works once and for {_validity(facts)}. Setting a new password signs",
            "out every session. If you did not ask for this, ignore this email: your",
            "password stays as it is.",
        ]
        return "Frameflow: reset your password", "\n".join(lines) + "\n"
    if event == MAIL_ALREADY_REGISTERED:
        lines = [
            "Someone tried to create a Frameflow account with this email address, which",
            "already has one. If it was you, sign in at:",
            "",
            f"  {base_url}/",
            "",
            "and if you forgot your password, use 'Forgot password?' there.",
            "If it was not you, you can ignore this email; nothing has changed.",
        ]
        return "Frameflow: someone tried to register with your address", "\n".join(lines) + "\n"
    if event == MAIL_EMAIL_CHANGED:
        lines = [
            "The email address of your Frameflow account at",
            "",
            f"  {base_url}/",
            "",
            f"was changed from this address to {masked_address(str(facts['new_email']))}.",
            "Mail about the account, password reset links included, now goes there.",
            "",
            "If you made this change, there is nothing to do. If you did not, someone",
            "who knows your password has the account: contact the administrator of",
            "this Frameflow server.",
        ]
        return "Frameflow: your email address was changed", "\n".join(lines) + "\n"
    raise ValueError(f"not an account mail: {event}")
