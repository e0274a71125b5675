"""JSON request bodies declared as pydantic models.

The model a handler validates with is also what the OpenAPI document
describes for that body (`server.openapi`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler
from pydantic_core import PydanticCustomError

from server.errors import BadRequest
from server.http import read_json_object

M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], data: object) -> M:
    """`data` as `model`, or a 400 `invalid_field` naming the first field that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])[:64]
        if not field:
            raise BadRequest(error["msg"], code="invalid_field") from None
        if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            # Name what the body does take: pydantic's "Extra inputs are not permitted" does not.
            known = ", ".join(model.model_fields)
            message = f"'{field}' is not a field of this body (it takes {known})"
        else:
            message = f"'{field}': {error['msg']}"
        raise BadRequest(message, code="invalid_field", field=field) from None


async def read_body(request: web.Request, model: type[M]) -> M:
    return validate_body(model, await read_json_object(request))


def as_one_field(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A wrap validator for a list field whose errors name the field, not `field.3`:

    `field_validator("tags", mode="wrap")(as_one_field)`. The item stays in the message."""
    try:
        return handler(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        detail = f"item {where}: {error['msg']}" if where else error["msg"]
        raise PydanticCustomError("invalid_item", "{detail}", {"detail": detail}) from None
