"""The one JSON shape of a generation and of a provider listing."""

from __future__ import annotations

from typing import Any

from server.generations.model import Generation
from server.generations.registry import ProviderListing


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def generation_json(g: Generation) -> dict[str, Any]:
    return {
        "id": str(g.id),
        "status": g.status,
        "progress": round(g.progress, 1),
        "provider": g.provider,
        "model": g.model,
        "prompt": g.prompt,
        "negative_prompt": g.negative_prompt,
        "image_id": str(g.image_id) if g.image_id else None,
        "duration_seconds": g.duration_seconds,
        "resolution": g.resolution,
        "aspect_ratio": g.aspect_ratio,
        "seed": g.seed,
        "process": g.process,
        "estimate": g.estimate_credits,
        "credits_held": g.estimate_credits if not g.finished else 0,
        "credits_charged": g.credits_charged,
        "job_id": str(g.job_id) if g.job_id else None,
        "video_id": str(g.video_id) if g.video_id else None,
        "error": {"code": g.error_code, "message": g.error} if g.error_code else None,
        "created_at": _iso(g.created_at),
        "updated_at": _iso(g.updated_at),
        "finished_at": _iso(g.finished_at),
    }


def provider_json(listing: ProviderListing) -> dict[str, Any]:
    info = listing.info
    return {
        "name": info.name,
        "models": list(info.models),
        "resolutions": list(info.resolutions),
        "durations": list(info.durations),
        "aspect_ratios": list(info.aspect_ratios),
        "image_to_video": info.image_to_video,
        "price_per_second": info.price_per_second,
        "configured": info.configured,
        "circuit": listing.circuit,
    }
