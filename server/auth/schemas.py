"""Request bodies of the account and session endpoints, validated and published from here.

Unknown fields of the credential bodies are ignored (clients add their own, such as
"remember me"); the account's settings refuse them, since a typo there would be
silently ignored otherwise. Strings are strict: a number is not an email.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

# Longer than any real address or passphrase; bcrypt's own limit is checked by the service.
MAX_FIELD_CHARS = 1024
MAX_REFRESH_TOKEN_CHARS = 4096


class Credentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: StrictStr = Field(max_length=MAX_FIELD_CHARS, description="The account's email")
    password: StrictStr = Field(max_length=MAX_FIELD_CHARS, description="8 to 72 bytes")


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    refresh_token: StrictStr = Field(max_length=MAX_REFRESH_TOKEN_CHARS)


class AccountChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_notifications: StrictBool | None = Field(default=None, description="Mail when a job ends")
    email: StrictStr | None = Field(
        default=None,
        max_length=MAX_FIELD_CHARS,
        description="A new address: unverified until the link mailed to it is followed",
    )
    current_password: StrictStr | None = Field(
        default=None,
        max_length=MAX_FIELD_CHARS,
        description="The account's password: needed to change `email`",
    )
