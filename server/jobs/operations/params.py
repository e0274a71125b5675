"""Reading an operation's params: one validated field at a time, a 400 naming the field."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from server.errors import BadRequest
from server.jobs.context import JobContext
from server.jobs.operations.argv import decimal
from server.jobs.operations.protocol import Operation, OperationFailed


def invalid(field: str, message: str) -> BadRequest:
    return BadRequest(f"params.{field}: {message}", code="invalid_params", field=f"params.{field}")


def validated_params(op: Operation, ctx: JobContext) -> dict[str, Any]:
    """The job's params validated again at run time (limits may have changed since)."""
    try:
        return op.parse_params(ctx.job.params, ctx.video, ctx.settings)
    except BadRequest as exc:
        raise OperationFailed(exc.message) from exc


# Unknown names are echoed back in the error; a client bug should not make it huge.
_MAX_ECHOED_NAME = 40


class ParamReader:
    """Reads one operation's raw params, one validated field at a time.

    Every read fills the default or raises `invalid(field, ...)`. `None`
    counts as "not given", so the dict a parse_params returns (defaults
    filled, unused options None) parses again to itself: the runner can
    re-validate stored params at run time without special cases.
    """

    def __init__(
        self, raw: object, allowed: Iterable[str], *, misplaced: Mapping[str, str] | None = None
    ) -> None:
        """`misplaced`: names that exist elsewhere (another source kind), with the
        message to give instead of "unknown parameter"."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise BadRequest("params must be an object", code="invalid_params", field="params")
        names = sorted(allowed)
        for key in raw:
            if misplaced and key in misplaced:
                raise invalid(key, misplaced[key])
            if key not in names:
                raise invalid(
                    str(key)[:_MAX_ECHOED_NAME],
                    "unknown parameter; expected one of " + ", ".join(names),
                )
        self._raw: Mapping[str, Any] = raw

    def given(self, name: str) -> bool:
        return self._raw.get(name) is not None

    def value(self, name: str) -> Any:
        """The raw value (None if not given), for a field with a syntax of its own."""
        return self._raw.get(name)

    def number(
        self,
        name: str,
        default: float | None,
        *,
        minimum: float | None = None,
        above: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        value = self._raw.get(name)
        if value is None:
            return default
        # bool is an int subclass: `true` must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(name, "must be a number")
        try:
            value = float(value)
        except OverflowError:
            # An integer past the float range: JSON allows any number of digits.
            raise invalid(name, "is out of range") from None
        if not math.isfinite(value):
            raise invalid(name, "must be a finite number")
        if minimum is not None and value < minimum:
            raise invalid(name, f"must be at least {decimal(minimum)}")
        if above is not None and value <= above:
            raise invalid(name, f"must be greater than {decimal(above)}")
        if maximum is not None and value > maximum:
            raise invalid(name, f"must be at most {decimal(maximum)}")
        return value

    def integer(
        self, name: str, default: int | None, *, minimum: int, maximum: int, even: bool = False
    ) -> int | None:
        value = self._raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "must be an integer")
        if value < minimum:
            raise invalid(name, f"must be at least {minimum}")
        if value > maximum:
            raise invalid(name, f"must be at most {maximum}")
        if even and value % 2:
            # 4:2:0 video halves the chroma planes: odd sizes cannot be encoded.
            raise invalid(name, "must be an even number")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise invalid(name, "must be true or false")
        return value

    def choice(self, name: str, options: Iterable[str], default: str) -> str:
        value = self._raw.get(name)
        if value is None:
            return default
        allowed = list(options)
        if not isinstance(value, str) or value not in allowed:
            raise invalid(name, "must be one of " + ", ".join(allowed))
        return value

    def span(self, duration: float) -> tuple[float, float]:
        """`start`/`end` seconds: 0 <= start < end <= duration; defaults 0 and duration."""
        start = self.number("start", 0.0, minimum=0.0)
        assert start is not None
        if start >= duration:
            raise invalid("start", f"must be less than the duration ({decimal(duration)} s)")
        end = self.number("end", duration, above=start)
        assert end is not None
        if end > duration:
            raise invalid("end", f"must be at most the duration ({decimal(duration)} s)")
        return start, end
