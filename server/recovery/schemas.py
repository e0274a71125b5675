"""Request bodies of email verification and password recovery, validated and
published from here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from server.auth.schemas import MAX_FIELD_CHARS

# A mailed token is 43 characters; anything much longer is not one.
MAX_TOKEN_CHARS = 256


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: StrictStr = Field(max_length=MAX_TOKEN_CHARS, description="From the mailed link")


class EmailBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: StrictStr = Field(max_length=MAX_FIELD_CHARS)


class ResetConfirm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: StrictStr = Field(max_length=MAX_TOKEN_CHARS, description="From the mailed link")
    password: StrictStr = Field(max_length=MAX_FIELD_CHARS, description="The new password")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="ignore")

    current_password: StrictStr = Field(max_length=MAX_FIELD_CHARS)
    new_password: StrictStr = Field(max_length=MAX_FIELD_CHARS)
