"""Compose a job's email (pure): subject, plain-text body, links.

File names and operation names come from users. Every such value goes
through `clean_header_text` before it reaches a header: CR, LF and every
other control or line-separator character is removed, so it can never start
a header of its own; the `email` library then encodes and folds the result.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

MAX_NAME_CHARS = 120
# Unicode "line breaking" characters that are not in category Cc.
_LINE_SEPARATORS = {"\u2028", "\u2029", "\u0085"}


def clean_header_text(value: object, max_chars: int = MAX_NAME_CHARS) -> str:
    """One line of printable text: control characters dropped, runs of
    whitespace collapsed, long values cut with an ellipsis."""
    text = "".join(
        " "
        if ch in _LINE_SEPARATORS or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}
        else ch
        for ch in str(value)
    )
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def subject_for(event: str, facts: Mapping[str, Any]) -> str:
    what = clean_header_text(facts.get("operation") or "job", 40)
    name = clean_header_text(facts.get("filename") or "your video")
    outcome = "is ready" if event == "job.succeeded" else "failed"
    return f"Frameflow: {what} of {name} {outcome}"


def body_for(
    event: str,
    facts: Mapping[str, Any],
    *,
    job_url: str,
    output_links: Sequence[tuple[str, str]],
    links_valid_hours: int,
) -> str:
    name = clean_header_text(facts.get("filename") or "your video", 500)
    operation = clean_header_text(facts.get("operation") or "job", 80)
    lines = []
    if event == "job.succeeded":
        lines.append(f"Your {operation} job on {name} succeeded.")
        if output_links:
            lines += ["", f"Outputs (links valid for {links_valid_hours} hours):"]
            lines += [f"  {clean_header_text(n, 200)}: {url}" for n, url in output_links]
    else:
        error = clean_header_text(facts.get("error") or "unknown error", 500)
        attempts = facts.get("attempts")
        lines.append(f"Your {operation} job on {name} failed after {attempts} attempt(s).")
        lines += ["", f"Error: {error}"]
    lines += [
        "",
        f"Job: {job_url}",
        "",
        "You get this email because job notifications are on for your account; turn",
        'them off with PATCH /api/v1/me {"email_notifications": false}.',
    ]
    return "\n".join(lines) + "\n"


def compose(
    *,
    mail_from: str,
    recipient: str,
    subject: str,
    body: str,
    domain: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    # The address object refuses anything that is not one mailbox.
    message["To"] = Address(addr_spec=clean_header_text(recipient, 320))
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: tells auto-responders not to answer a machine-sent mail.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message
