"""The body of `POST /api/v1/direct-uploads`, validated and published from here.

`max_size` is bounded above by the server's upload limit (a setting), which the
route checks; `process`, `ttl` and `preset` are parsed by the service.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from server.directuploads.service import (
    DEFAULT_EXPIRY_SECONDS,
    MAX_EXPIRY_SECONDS,
    MIN_EXPIRY_SECONDS,
)
from server.media.sniff import ALL_TYPES

MAX_METADATA_BYTES = 4096
ORIGIN_PATTERN = r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$"
_ORIGIN = re.compile(ORIGIN_PATTERN)
TYPES = sorted({t.content_type for t in ALL_TYPES} | {"video/*", "image/*"})


def _refused(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_value", "{detail}", {"detail": message})


class CreateDirectUpload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    max_size: StrictInt | None = Field(
        default=None, ge=1, description="Bytes; at most (and by default) the server's limit"
    )
    expires_in: StrictInt = Field(
        default=DEFAULT_EXPIRY_SECONDS,
        ge=MIN_EXPIRY_SECONDS,
        le=MAX_EXPIRY_SECONDS,
        description="Seconds the URL stays valid",
    )
    allowed_types: list[StrictStr] = Field(
        default_factory=list,
        description="Content types the upload may have (none: any)",
        json_schema_extra={"items": {"enum": [*TYPES]}},
    )
    process: StrictStr | None = Field(default=None, description="Operations to queue after it")
    preset: StrictStr | None = Field(default=None, description="A saved preset to queue after it")
    ttl: StrictStr | None = Field(default=None, description="How long the video is kept")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description=f"At most {MAX_METADATA_BYTES} bytes as JSON"
    )
    cors_origin: StrictStr | None = Field(
        default=None,
        description="The browser origin that may PUT to the URL",
        json_schema_extra={"pattern": ORIGIN_PATTERN},
    )

    @field_validator("allowed_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        if any(t not in TYPES for t in value):
            raise _refused(f"must be a list of: {', '.join(TYPES)}")
        return sorted(set(value))

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise _refused(f"must be an object of at most {MAX_METADATA_BYTES} bytes as JSON")
        return value

    @field_validator("cors_origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is not None and not _ORIGIN.match(value):
            raise _refused("must be an origin such as https://app.example.com")
        return value
