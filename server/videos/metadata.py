"""A video's title, description and tags: their limits and normal forms.

`server.videos.schemas.MetadataBody` (the PATCH body) turns a request into a
`MetadataPatch` with these. Pure. Tags are normalised so that "Holiday", " holiday "
and "HOLIDAY" are one tag: trimmed, inner whitespace collapsed, lower-cased,
duplicates dropped (first occurrence kept, in order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from server.errors import BadRequest

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 5000
MAX_TAGS = 20
MAX_TAG_CHARS = 40
FIELDS = ("title", "description", "tags")

# Control characters (tab and newline allowed in descriptions only). Search
# highlights are delimited with \x02/\x03, so stored text must never hold them.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
DESCRIPTION_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SPACES_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class MetadataPatch:
    """Fields present in the request; `None` for a field means "leave it"."""

    title: str | None = None
    reset_title: bool = False  # `"title": null` or "": back to the file name
    description: str | None = None
    tags: tuple[str, ...] | None = None


def _invalid(field: str, message: str) -> BadRequest:
    return BadRequest(message, code="invalid_field", field=field)


def normalise_tag(value: Any) -> str:
    """One tag as stored and searched: trimmed, single-spaced, lower case."""
    if not isinstance(value, str):
        raise _invalid("tags", "each tag must be a string")
    if CONTROL_RE.search(value):
        raise _invalid("tags", "a tag must not contain control characters")
    tag = SPACES_RE.sub(" ", value).strip().lower()
    if not tag:
        raise _invalid("tags", "a tag must not be empty")
    if len(tag) > MAX_TAG_CHARS:
        raise _invalid("tags", f"a tag is longer than {MAX_TAG_CHARS} characters")
    return tag


def normalise_tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _invalid("tags", "'tags' must be a list of strings")
    # Bounded before the work: a 64 KB body could otherwise hold thousands.
    if len(value) > MAX_TAGS * 4:
        raise _invalid("tags", f"at most {MAX_TAGS} tags")
    tags = tuple(dict.fromkeys(normalise_tag(v) for v in value))
    if len(tags) > MAX_TAGS:
        raise _invalid("tags", f"at most {MAX_TAGS} tags")
    return tags
