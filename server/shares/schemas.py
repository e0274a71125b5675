"""The request bodies of share links, validated and published from here: the owner's
POST /api/v1/videos/{id}/shares, and a visitor's POST /s/{token}/unlock and /renew."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from server.auth.passwords import MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES, password_bytes
from server.bodies import as_one_field
from server.errors import BadRequest
from server.shares.model import EXPOSURES, Exposure, ShareSpec

DEFAULT_EXPOSES: tuple[Exposure, ...] = ("video", "hls", "thumbnail")
MAX_EXPIRES_IN_SECONDS = 366 * 24 * 3600
# Longer than any password `password_bytes` accepts; refused before any hashing.
MAX_UNLOCK_PASSWORD_CHARS = 1024


class CreateShare(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exposes: list[Exposure] = Field(
        default_factory=lambda: list(DEFAULT_EXPOSES),
        min_length=1,
        max_length=len(EXPOSURES),
        description="What the link shows (repeats are ignored)",
    )
    download: StrictBool = Field(default=False, description="Whether visitors may download")
    password: StrictStr | None = Field(
        default=None,
        description=f"Asked of visitors; {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} "
        "bytes in UTF-8",
    )
    expires_in_seconds: StrictInt | None = Field(
        default=None, ge=1, le=MAX_EXPIRES_IN_SECONDS, description="None: the link never expires"
    )

    _exposes = field_validator("exposes", mode="wrap")(as_one_field)

    @field_validator("password")
    @classmethod
    def _acceptable(cls, password: str | None) -> str | None:
        if password is not None:
            try:
                password_bytes(password)
            except BadRequest as exc:
                raise PydanticCustomError("invalid_password", exc.message) from None
        return password

    def spec(self) -> ShareSpec:
        return ShareSpec(
            exposes=tuple(dict.fromkeys(self.exposes)),
            allow_download=self.download,
            password=self.password,
            expires_in_seconds=self.expires_in_seconds,
        )


class UnlockBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    password: StrictStr = Field(max_length=MAX_UNLOCK_PASSWORD_CHARS)


class RenewBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    grant: StrictStr | None = Field(
        default=None,
        max_length=100,
        description="The grant of the media links the player has (`open`, or the one "
        "minted when the password was given); none for a link without a password",
    )
