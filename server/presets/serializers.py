"""The one JSON shape of a preset."""

from __future__ import annotations

from typing import Any

from server.jobs.steps import steps_json
from server.presets.model import Preset


def preset_json(preset: Preset) -> dict[str, Any]:
    return {
        "id": str(preset.id),
        "name": preset.name,
        "operations": steps_json(preset.steps),
        "created_at": preset.created_at.isoformat(),
        "updated_at": preset.updated_at.isoformat(),
    }
