"""The body of POST /api/v1/videos/{id}/shares as a `ShareSpec`, or a 400 naming the field;
the body of a visitor's POST /s/{token}/renew."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from server.auth.passwords import password_bytes
from server.errors import BadRequest
from server.shares.model import EXPOSURES, Exposure, ShareSpec

FIELDS = ("exposes", "download", "password", "expires_in_seconds")
DEFAULT_EXPOSES: tuple[Exposure, ...] = ("video", "hls", "thumbnail")
MAX_EXPIRES_IN_SECONDS = 366 * 24 * 3600


def _invalid(field: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_field", field=field)


def parse_share_spec(data: dict[str, Any]) -> ShareSpec:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise _invalid(unknown[0][:64], f"'{unknown[0][:64]}' is not a share field")
    exposes = data.get("exposes", list(DEFAULT_EXPOSES))
    if not isinstance(exposes, list) or not exposes or len(exposes) > len(EXPOSURES):
        raise _invalid("exposes", f"'exposes' must be a non-empty list of {', '.join(EXPOSURES)}")
    chosen: list[Exposure] = []
    for item in exposes:
        if item not in EXPOSURES:
            raise _invalid("exposes", f"'exposes' may hold only {', '.join(EXPOSURES)}")
        if item not in chosen:
            chosen.append(item)
    download = data.get("download", False)
    if not isinstance(download, bool):
        raise _invalid("download", "'download' must be true or false")
    password = data.get("password")
    if password is not None:
        if not isinstance(password, str):
            raise _invalid("password", "'password' must be a string")
        try:
            password_bytes(password)
        except BadRequest as exc:
            raise _invalid("password", exc.message) from None
    expires = data.get("expires_in_seconds")
    if expires is not None and (
        isinstance(expires, bool)
        or not isinstance(expires, int)
        or not 1 <= expires <= MAX_EXPIRES_IN_SECONDS
    ):
        raise _invalid(
            "expires_in_seconds",
            f"'expires_in_seconds' must be an integer from 1 to {MAX_EXPIRES_IN_SECONDS}",
        )
    return ShareSpec(
        exposes=tuple(chosen),
        allow_download=download,
        password=password,
        expires_in_seconds=expires,
    )


class RenewBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    grant: StrictStr | None = Field(
        default=None,
        max_length=100,
        description="The grant of the media links the player has (`open`, or the one "
        "minted when the password was given); none for a link without a password",
    )
