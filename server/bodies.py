"""JSON request bodies declared as pydantic models.

The model a handler validates with is also what the OpenAPI document
describes for that body (`server.openapi`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.errors import BadRequest
from server.http import read_json_object

M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], data: object) -> M:
    """`data` as `model`, or a 400 `invalid_field` naming the first field that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        if not field:
            raise BadRequest(error["msg"], code="invalid_field") from None
        raise BadRequest(f"'{field}': {error['msg']}", code="invalid_field", field=field) from None


async def read_body(request: web.Request, model: type[M]) -> M:
    return validate_body(model, await read_json_object(request))
