"""`OperationCatalog`: what each operation takes, as `GET /api/v1/operations` lists it.

Built from the same declarations `read_params` validates with (each
operation's `param_models`, flattened from their JSON Schema) and this
server's settings, so the bounds and defaults a client reads are the ones
the server applies.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from config.settings import Settings
from server.jobs.operations.params import ParamInfo, describe_params
from server.jobs.operations.protocol import Operation, param_models

# Kinds in the order clients show them.
_KIND_ORDER = ("video", "image")


@dataclass(frozen=True)
class OperationInfo:
    name: str
    summary: str
    kinds: tuple[str, ...]
    # Params per kind of source (they differ: convert takes `format` for images only).
    params: Mapping[str, tuple[ParamInfo, ...]]


@dataclass(frozen=True)
class ServerLimits:
    """The settings that bound what a job (or an upload) may ask for."""

    max_upload_bytes: int
    max_input_duration_seconds: float
    max_pixels: int
    max_output_fps: float
    max_frames_per_zip: int

    @classmethod
    def of(cls, settings: Settings) -> ServerLimits:
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            max_input_duration_seconds=settings.max_input_duration_seconds,
            max_pixels=settings.max_pixels,
            max_output_fps=settings.max_output_fps,
            max_frames_per_zip=settings.max_frames_per_zip,
        )


@dataclass(frozen=True)
class Catalog:
    operations: tuple[OperationInfo, ...]
    limits: ServerLimits


class OperationCatalog:
    def __init__(self, *, operations: Mapping[str, Operation], settings: Settings) -> None:
        self._operations = operations
        self._settings = settings

    @functools.cached_property
    def _catalog(self) -> Catalog:
        # Settings are read once at start-up, so the catalog never changes.
        return Catalog(
            operations=tuple(self._describe(op) for op in self._operations.values()),
            limits=ServerLimits.of(self._settings),
        )

    def describe(self) -> Catalog:
        return self._catalog

    def _describe(self, op: Operation) -> OperationInfo:
        kinds = tuple(sorted(op.kinds, key=lambda k: (_rank(k), k)))
        models = param_models(op)
        return OperationInfo(
            name=op.name,
            summary=getattr(op, "summary", ""),
            kinds=kinds,
            params={
                kind: tuple(describe_params(models[kind], self._settings))
                for kind in kinds
                if kind in models
            },
        )


def _rank(kind: str) -> int:
    return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
