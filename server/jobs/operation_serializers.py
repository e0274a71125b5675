"""JSON shape of the operation catalog, as `GET /api/v1/operations` returns it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from server.jobs.operations.catalog import Catalog, OperationInfo
from server.jobs.operations.params import ParamInfo


def catalog_json(catalog: Catalog) -> dict[str, Any]:
    return {
        "operations": [operation_json(op) for op in catalog.operations],
        "limits": asdict(catalog.limits),
    }


def operation_json(op: OperationInfo) -> dict[str, Any]:
    return {
        "name": op.name,
        "summary": op.summary,
        "kinds": list(op.kinds),
        "params": {kind: [param_json(p) for p in params] for kind, params in op.params.items()},
    }


def param_json(param: ParamInfo) -> dict[str, Any]:
    return {
        "name": param.name,
        "type": param.type if isinstance(param.type, str) else list(param.type),
        "default": param.default,
        "minimum": param.minimum,
        "maximum": param.maximum,
        "exclusive_minimum": param.exclusive_minimum,
        "multiple_of": param.multiple_of,
        "choices": list(param.choices) if param.choices is not None else None,
        "help": param.help,
    }
