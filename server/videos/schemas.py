"""The body of PATCH /api/v1/videos/{id}, validated and published from here.

Absent fields are left as they are; `MetadataBody.patch` says what changes. The
limits apply to the text as stored (trimmed, spaces collapsed; tags lower-cased
and without repeats), so the normalising runs before them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from server.errors import BadRequest
from server.videos.metadata import (
    CONTROL_RE,
    DESCRIPTION_CONTROL_RE,
    FIELDS,
    MAX_DESCRIPTION_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    SPACES_RE,
    MetadataPatch,
    normalise_tags,
)


def _refused(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_value", "{detail}", {"detail": message})


class MetadataBody(BaseModel):
    """The limits apply to the text as stored (trimmed, spaces collapsed)."""

    model_config = ConfigDict(extra="forbid")

    title: StrictStr | None = Field(
        default=None,
        max_length=MAX_TITLE_CHARS,
        description="null or empty: back to the file name",
    )
    # null for these two is "leave it", as absent (the account's PATCH reads null so too).
    description: StrictStr | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]] | None = Field(
        default=None,
        max_length=MAX_TAGS,
        description="Stored trimmed and lower-cased, repeats dropped",
    )

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the type check names it
        if CONTROL_RE.search(value):
            raise _refused("must not contain control characters")
        return SPACES_RE.sub(" ", value).strip()

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if DESCRIPTION_CONTROL_RE.search(value):
            raise _refused("must not contain control characters")
        return value.strip()

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return list(normalise_tags(value))
        except BadRequest as exc:
            raise _refused(exc.message) from None

    def patch(self) -> MetadataPatch:
        if "title" not in self.model_fields_set and self.description is None and self.tags is None:
            raise BadRequest(
                f"Send at least one of {', '.join(FIELDS)}", code="invalid_field", field="title"
            )
        title = self.title or None
        return MetadataPatch(
            title=title,
            reset_title="title" in self.model_fields_set and title is None,
            description=self.description,
            tags=None if self.tags is None else tuple(self.tags),
        )
