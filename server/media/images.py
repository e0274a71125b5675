"""Still images with Pillow: limits, EXIF, a stripped copy, a thumbnail.

Blocking functions: call them with `asyncio.to_thread`. Nothing here parses
image bytes by hand — Pillow opens each file pinned to the format the upload
was sniffed as, and its decompression-bomb limit (`configure_pillow`) stops
an image that declares more pixels than allowed before a pixel is decoded.

`prepare_image` decodes at most twice (once for the stripped copy, once —
with JPEG's DCT scaling — for the thumbnail), each bounded by the pixel limit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

THUMBNAIL_SIDE = 512
THUMBNAIL_CONTENT_TYPE = "image/jpeg"
_THUMBNAIL_QUALITY = 85
_WEBP_QUALITY = 90
_MAX_TEXT = 100  # characters kept of a camera's make or model

# Sniffed content type → Pillow's format name (the only one it may open as).
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}

_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
# GPS IFD tags
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6
# Keys of `info` that carry metadata Pillow may write back when saving.
_METADATA_INFO_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop")


def configure_pillow(max_pixels: int) -> None:
    """Pillow's decompression-bomb limit, process-wide. Pillow only *warns* between
    the limit and twice it; make that an error too, so the limit is the limit."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageLimits:
    min_side: int
    max_side: int
    max_pixels: int


class ImageRefused(Exception):
    """The image breaks a limit or cannot be decoded: `code` and `data` for a 422."""

    def __init__(self, message: str, code: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


@dataclass(frozen=True)
class PreparedImage:
    width: int
    height: int
    exif: dict[str, Any]
    thumbnail: Path
    thumbnail_width: int
    thumbnail_height: int
    stripped: Path | None  # the original rewritten without metadata, when asked and needed


def _open(path: Path, content_type: str) -> Image.Image:
    try:
        return Image.open(path, formats=[PILLOW_FORMATS[content_type]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(
            f"The image declares more than {Image.MAX_IMAGE_PIXELS} pixels",
            "image_too_many_pixels",
            max_pixels=Image.MAX_IMAGE_PIXELS,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"The image cannot be decoded: {exc}", "undecodable") from None


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageRefused(
            f"The image has {width * height} pixels; the limit is {limits.max_pixels}",
            "image_too_many_pixels",
            max_pixels=limits.max_pixels,
        )
    if min(width, height) < limits.min_side:
        raise ImageRefused(
            f"The image is {width}x{height}; each side must be at least {limits.min_side} px",
            "image_too_small",
            min_side=limits.min_side,
            width=width,
            height=height,
        )
    if max(width, height) > limits.max_side:
        raise ImageRefused(
            f"The image is {width}x{height}; each side must be at most {limits.max_side} px",
            "image_dimensions",
            max_side=limits.max_side,
            width=width,
            height=height,
        )


def prepare_image(
    path: Path, content_type: str, limits: ImageLimits, scratch: Path, *, strip: bool
) -> PreparedImage:
    """Check the image against `limits`, read its EXIF, write its thumbnail (and,
    with `strip`, a copy without EXIF) into `scratch`. Raises `ImageRefused`."""
    with _open(path, content_type) as img:
        width, height = img.size
        check_dimensions(width, height, limits)
        exif = read_exif(img.getexif())
        stripped = None
        try:
            if strip and carries_metadata(img):
                stripped = scratch / f"stripped.{PILLOW_FORMATS[content_type].lower()}"
                write_stripped(img, stripped, exif.get("orientation", 1))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageRefused(f"The image cannot be decoded: {exc}", "undecodable") from None
    with _open(path, content_type) as img:
        thumbnail = scratch / "thumbnail.jpg"
        try:
            thumb_w, thumb_h = write_thumbnail(img, thumbnail)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageRefused(f"The image cannot be decoded: {exc}", "undecodable") from None
    return PreparedImage(width, height, exif, thumbnail, thumb_w, thumb_h, stripped)


def carries_metadata(img: Image.Image) -> bool:
    """Anything to strip: EXIF beyond the orientation, XMP, comments, PNG text. An
    image without any is stored as uploaded (no re-encoding)."""
    if set(img.getexif()) - {_ORIENTATION}:
        return True
    if any(key in img.info for key in _METADATA_INFO_KEYS if key != "exif"):
        return True
    return bool(getattr(img, "text", None))


def write_stripped(img: Image.Image, out: Path, orientation: int) -> None:
    """`img` saved again without EXIF, XMP or comments; only its orientation is kept
    (so viewers still turn it upright) and its colour profile. JPEG keeps its
    quantisation tables and subsampling (no second generation of loss)."""
    fmt = img.format or "PNG"
    icc = img.info.get("icc_profile")
    kept: dict[str, Any] = {}
    if orientation != 1:
        minimal = Image.Exif()
        minimal[_ORIENTATION] = orientation
        kept["exif"] = minimal.tobytes()
    if icc:
        kept["icc_profile"] = icc
    img.load()
    for key in _METADATA_INFO_KEYS:
        img.info.pop(key, None)
    if fmt == "JPEG":
        img.save(out, "JPEG", quality="keep", **kept)
    elif fmt == "WEBP":
        img.save(out, "WEBP", quality=_WEBP_QUALITY, **kept)
    else:
        if "transparency" in img.info:
            kept["transparency"] = img.info["transparency"]
        img.save(out, "PNG", **kept)


def write_thumbnail(img: Image.Image, out: Path) -> tuple[int, int]:
    """A JPEG that fits in THUMBNAIL_SIDE² (aspect kept, never enlarged), turned
    upright by the EXIF orientation, with no metadata at all."""
    if img.format == "JPEG":
        # Decode at a reduced scale (DCT scaling) when the image is much larger.
        img.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    upright = ImageOps.exif_transpose(img)
    upright.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        upright = flat
    elif upright.mode != "RGB":
        upright = upright.convert("RGB")
    upright.info.clear()
    upright.save(out, "JPEG", quality=_THUMBNAIL_QUALITY, optimize=True)
    return upright.size


# --- EXIF ------------------------------------------------------------------------------


def read_exif(exif: Image.Exif) -> dict[str, Any]:
    """Camera, capture time, orientation and GPS position, as JSON; absent or
    malformed fields are left out."""
    found: dict[str, Any] = {}
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    if make:
        found["camera_make"] = make
    if model:
        found["camera_model"] = model
    orientation = exif.get(_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        found["orientation"] = orientation
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except (KeyError, ValueError, TypeError, OSError):
        details, gps = {}, {}
    captured = _capture_time(
        details.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME), details.get(_OFFSET_TIME_ORIGINAL)
    )
    if captured:
        found["captured_at"] = captured
    position = _gps(gps)
    if position:
        found["gps"] = position
    return found


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(c for c in value if c.isprintable()).strip()
    return cleaned[:_MAX_TEXT] or None


def _capture_time(value: object, offset: object) -> str | None:
    """EXIF's `YYYY:MM:DD HH:MM:SS` (and `±HH:MM` offset, when given) as ISO 8601."""
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    iso = moment.isoformat()
    zone = _text(offset)
    if zone and len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        try:
            datetime.strptime(zone[1:], "%H:%M")
        except ValueError:
            return iso
        iso += zone
    return iso


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _degrees(dms: object, ref: object, negative: str) -> float | None:
    if not isinstance(dms, tuple) or len(dms) != 3:
        return None
    parts = [_number(p) for p in dms]
    if any(p is None for p in parts):
        return None
    d, m, s = (p for p in parts if p is not None)
    value = d + m / 60 + s / 3600
    if _text(ref) == negative:
        value = -value
    return round(value, 7)


def _gps(gps: dict[int, Any]) -> dict[str, float] | None:
    lat = _degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S")
    lon = _degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    position = {"latitude": lat, "longitude": lon}
    altitude = _number(gps.get(_GPS_ALT))
    if altitude is not None:
        below = gps.get(_GPS_ALT_REF) in (1, b"\x01")
        position["altitude"] = round(-altitude if below else altitude, 2)
    return position
