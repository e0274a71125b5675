"""The operations' params as declarations, and reading them into a 400 naming the field.

Each operation declares its params as one pydantic model per kind of source
(an `OperationParams`): per field its type, default, bounds, choices and a
help text. The same model validates a job's params, emits JSON Schema
(`model_json_schema()`), and is what `GET /api/v1/operations` lists
(`describe_params`). Checks that need the probed video (start within the
duration, no upscaling, the pixel limit) or that tie fields together stay as
code in each operation, after `read_params`.

Reading is strict, as JSON wants: `"1"` is no number, `true` no integer,
`1.5` no integer, NaN and infinities no numbers. `null` counts as "not
given", so the dict a parse_params returns (defaults filled, unused options
None) parses again to itself: the runner re-validates stored params at run
time without special cases.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema
from pydantic_core import ErrorDetails as PydanticError

from config.settings import Settings
from server.errors import BadRequest
from server.jobs.context import JobContext
from server.jobs.operations.argv import decimal
from server.jobs.operations.protocol import Operation, OperationFailed

# Unknown names are echoed back in the error; a client bug should not make it huge.
_MAX_ECHOED_NAME = 40
# Where a field's setting-bound maximum is written in its JSON Schema.
MAXIMUM_SETTING_KEY = "x-maximum-setting"


class OperationParams(BaseModel):
    """The params one operation takes for one kind of source."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    # A better message than "applies to <kind>s only" for a name that belongs
    # to another kind of source (e.g. convert's `format` on a video).
    misplaced_hints: ClassVar[Mapping[str, str]] = {}

    def maximums_from_params(self) -> Mapping[str, float]:
        """Maximums that depend on another param (e.g. gif's frame rate): the lowest applies."""
        return {}


P = TypeVar("P", bound=OperationParams)


@dataclasses.dataclass(frozen=True)
class OneOf:
    """Field metadata: the value must be one of `choices` (JSON Schema `enum`).

    Lets a dict's keys (containers, codecs, ...) be the one list of choices,
    where `Literal[...]` would need them spelled out again.
    """

    choices: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.literal_schema(list(self.choices))


@dataclasses.dataclass(frozen=True)
class AtMostSetting:
    """Field metadata: the value is also bounded by a setting; the lower bound applies.

    A value above it is a 400; a declared default above it is lowered to it.
    """

    setting: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema[MAXIMUM_SETTING_KEY] = self.setting
        return json_schema

    def value(self, settings: Settings) -> float:
        return float(getattr(settings, self.setting))


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    """One param as clients see it, flattened from its JSON Schema."""

    name: str
    type: str | tuple[str, ...]  # JSON Schema type(s) besides null
    default: Any
    minimum: float | None
    maximum: float | None
    exclusive_minimum: float | None
    multiple_of: float | None
    choices: tuple[Any, ...] | None  # of the value, or of each item of a list
    help: str
    maximum_setting: str | None

    def with_settings(self, settings: Settings) -> ParamInfo:
        """Bounds and default as this server applies them (see `AtMostSetting`)."""
        if self.maximum_setting is None:
            return self
        cap = float(getattr(settings, self.maximum_setting))
        maximum = cap if self.maximum is None else min(self.maximum, cap)
        default = self.default
        if isinstance(default, int | float) and not isinstance(default, bool):
            default = min(default, maximum)
        return dataclasses.replace(self, maximum=maximum, default=default)


@functools.cache
def _declared(model: type[OperationParams]) -> dict[str, ParamInfo]:
    schema = model.model_json_schema()
    return {name: _flatten(name, prop) for name, prop in schema["properties"].items()}


def _flatten(name: str, prop: dict[str, Any]) -> ParamInfo:
    # `X | None` is anyOf [X, null]: null only means "not given" here.
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    types = tuple(b["type"] for b in branches)

    def first(key: str) -> Any:
        return next((b[key] for b in (prop, *branches) if key in b), None)

    items = first("items") or {}
    choices = first("enum") or items.get("enum")
    return ParamInfo(
        name=name,
        type=types[0] if len(types) == 1 else types,
        default=prop.get("default"),
        minimum=first("minimum"),
        maximum=first("maximum"),
        exclusive_minimum=first("exclusiveMinimum"),
        multiple_of=first("multipleOf"),
        choices=tuple(choices) if choices else None,
        help=prop.get("description", ""),
        maximum_setting=prop.get(MAXIMUM_SETTING_KEY),
    )


def describe_params(model: type[OperationParams], settings: Settings) -> list[ParamInfo]:
    """Every param of `model`, in declaration order, with this server's bounds."""
    return [info.with_settings(settings) for info in _declared(model).values()]


def invalid(field: str, message: str) -> BadRequest:
    return BadRequest(f"params.{field}: {message}", code="invalid_params", field=f"params.{field}")


def read_params(
    model: type[P],
    raw: object,
    settings: Settings,
    *,
    siblings: Mapping[str, type[OperationParams]] | None = None,
) -> P:
    """`raw` validated against `model`, setting bounds applied; 400 naming the first bad field.

    `siblings`: the operation's models for every kind of source, so that a
    name that belongs to another kind gets "applies to <kind>s only" rather
    than "unknown parameter".
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise BadRequest("params must be an object", code="invalid_params", field="params")
    names = sorted(model.model_fields)
    misplaced = _misplaced(model, siblings or {})
    for key in raw:
        if key in misplaced:
            raise invalid(key, misplaced[key])
        if key not in model.model_fields:
            raise invalid(
                str(key)[:_MAX_ECHOED_NAME],
                "unknown parameter; expected one of " + ", ".join(names),
            )
    given = {key: value for key, value in raw.items() if value is not None}
    try:
        params = model.model_validate(given)
    except ValidationError as exc:
        raise _first_error(model, exc) from None
    return _apply_setting_bounds(params, settings)


def _misplaced(
    model: type[OperationParams], siblings: Mapping[str, type[OperationParams]]
) -> dict[str, str]:
    found: dict[str, str] = {}
    for kind, other in siblings.items():
        for name in other.model_fields:
            if name not in model.model_fields:
                found.setdefault(name, model.misplaced_hints.get(name, f"applies to {kind}s only"))
    return found


def _apply_setting_bounds(params: P, settings: Settings) -> P:
    """Maximums the schema alone cannot hold: settings', and those set by other params."""
    dependent = params.maximums_from_params()
    lowered: dict[str, Any] = {}
    for name in type(params).model_fields:
        value = getattr(params, name)
        declared = _declared(type(params))[name].with_settings(settings).maximum
        bounds = [b for b in (declared, dependent.get(name)) if b is not None]
        if value is None or not bounds or value <= min(bounds):
            continue
        if name in params.model_fields_set:
            raise invalid(name, f"must be at most {decimal(min(bounds))}")
        lowered[name] = type(value)(min(bounds))  # a default: never more than the limit
    return params.model_copy(update=lowered) if lowered else params


def _first_error(model: type[OperationParams], exc: ValidationError) -> BadRequest:
    error = exc.errors(include_url=False)[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    if name not in model.model_fields:
        return BadRequest("params must be an object", code="invalid_params", field="params")
    return invalid(name, _message(error, _declared(model)[name]))


def _message(error: PydanticError, info: ParamInfo) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    choices = ", ".join(str(c) for c in info.choices or ())
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        # An integer past the float range: JSON allows any number of digits.
        return "is out of range"
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind]} {decimal(float(next(iter(ctx.values()))))}"
    if kind == "multiple_of":
        # 4:2:0 video halves the chroma planes: odd sizes cannot be encoded.
        step = ctx["multiple_of"]
        return "must be an even number" if step == 2 else f"must be a multiple of {step}"
    if kind == "literal_error":
        return "must be one of " + choices
    if kind in ("list_type", "too_short"):
        return "must be a non-empty list" + (f" of {choices}" if choices else "")
    if len(error["loc"]) > 1:  # an item of a list
        return f"each must be one of {choices}" if choices else "has an invalid item"
    # Our own validators' messages (PydanticCustomError) are written for people.
    return error["msg"]


_MESSAGES = {
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
}
_BOUNDS = {
    "greater_than_equal": "must be at least",
    "greater_than": "must be greater than",
    "less_than_equal": "must be at most",
    "less_than": "must be less than",
}


def check_at_least(name: str, value: float | None, minimum: float) -> None:
    """A bound the schema cannot know (it depends on the video or on another field)."""
    if value is not None and value < minimum:
        raise invalid(name, f"must be at least {decimal(minimum)}")


def check_at_most(name: str, value: float | None, maximum: float) -> None:
    """A bound the schema cannot know (it depends on the video or on another field)."""
    if value is not None and value > maximum:
        raise invalid(name, f"must be at most {decimal(maximum)}")


def check_span(start: float, end: float | None, duration: float) -> tuple[float, float]:
    """`start`/`end` against the source: start < duration, start < end <= duration.

    `end` None is the default: the end of the source.
    """
    if start >= duration:
        raise invalid("start", f"must be less than the duration ({decimal(duration)} s)")
    if end is None:
        return start, duration
    if end <= start:
        raise invalid("end", f"must be greater than {decimal(start)}")
    if end > duration:
        raise invalid("end", f"must be at most the duration ({decimal(duration)} s)")
    return start, end


def validated_params(op: Operation, ctx: JobContext) -> dict[str, Any]:
    """The job's params validated again at run time (limits may have changed since)."""
    try:
        return op.parse_params(ctx.job.params, ctx.video, ctx.settings)
    except BadRequest as exc:
        raise OperationFailed(exc.message) from exc
