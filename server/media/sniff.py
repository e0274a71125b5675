"""Decide what an upload is from its first bytes, never from its name.

The answer also names the FFmpeg demuxer to pin with ``-f``: FFmpeg's own
format probing would happily open an HLS playlist, an ffconcat list or an
image sequence pattern that was uploaded as "video.mp4" and follow the paths
or URLs inside it. Pinning a demuxer chosen here from the magic number means
only the formats listed below ever reach FFmpeg.

Pure functions only: the upload path feeds this the first ``SNIFF_BYTES`` of
the body while it streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Enough for every check below: MPEG-TS needs three sync bytes (offsets 0, 188
# and 376) and the EBML header with its DocType sits in the first ~40 bytes.
SNIFF_BYTES = 512

Kind = Literal["video", "image"]


@dataclass(frozen=True, slots=True)
class SniffResult:
    content_type: str
    kind: Kind
    demuxer: str  # FFmpeg input format to pin with ``-f``
    extension: str  # without the dot, for names of stored objects and downloads


MP4 = SniffResult("video/mp4", "video", "mov", "mp4")
QUICKTIME = SniffResult("video/quicktime", "video", "mov", "mov")
WEBM = SniffResult("video/webm", "video", "matroska", "webm")
MATROSKA = SniffResult("video/x-matroska", "video", "matroska", "mkv")
AVI = SniffResult("video/x-msvideo", "video", "avi", "avi")
MPEG_TS = SniffResult("video/mp2t", "video", "mpegts", "ts")
JPEG = SniffResult("image/jpeg", "image", "jpeg_pipe", "jpg")
PNG = SniffResult("image/png", "image", "png_pipe", "png")
WEBP = SniffResult("image/webp", "image", "webp_pipe", "webp")

ALL_TYPES: tuple[SniffResult, ...] = (MP4, QUICKTIME, WEBM, MATROSKA, AVI, MPEG_TS, JPEG, PNG, WEBP)

# The allow-list that every FFmpeg call on an upload must pin its input to.
ALLOWED_DEMUXERS: frozenset[str] = frozenset(t.demuxer for t in ALL_TYPES)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE_ID = b"\x42\x82"
_TS_PACKET = 188

# ISO BMFF brands that are still images (HEIF/AVIF), not video: the mov
# demuxer would open some of them, but they are not a format we accept.
_IMAGE_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)

# Top-level QuickTime atoms that old .mov files (no ``ftyp``) start with.
_QUICKTIME_FIRST_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def sniff(head: bytes) -> SniffResult | None:
    """The type of a file whose first bytes are ``head``, or None if not accepted.

    ``head`` should be the first ``SNIFF_BYTES`` bytes, or the whole file when
    it is shorter. Anything unrecognised (text, playlists, archives, empty
    input) is None, so the caller rejects it.
    """
    # Look at a fixed window whatever the caller passed, so the answer does not
    # depend on how big the first upload chunk happened to be.
    head = head[:SNIFF_BYTES]
    if len(head) < 4:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(b"RIFF") and len(head) >= 12:
        riff_type = head[8:12]
        if riff_type == b"AVI ":
            return AVI
        if riff_type == b"WEBP":
            return WEBP
        return None
    if head.startswith(_EBML_MAGIC):
        return _sniff_ebml(head)
    if len(head) >= 12:
        found = _sniff_iso_bmff(head)
        if found is not None:
            return found
    if _looks_like_mpeg_ts(head):
        return MPEG_TS
    return None


def _sniff_iso_bmff(head: bytes) -> SniffResult | None:
    box_size = int.from_bytes(head[0:4], "big")
    box_type = head[4:8]
    # Size 0 means "to end of file" and 1 means "64-bit size follows"; any
    # other size below the 8-byte box header cannot be a real box.
    if box_size not in (0, 1) and box_size < 8:
        return None
    if box_type == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return QUICKTIME
        if brand in _IMAGE_BRANDS:
            return None
        return MP4
    if box_type in _QUICKTIME_FIRST_ATOMS:
        return QUICKTIME
    return None


def _looks_like_mpeg_ts(head: bytes) -> bool:
    # A single 0x47 is just the letter "G" (any text file starting with
    # "GET ..." would match), so at least two packets' sync bytes must be in
    # the head; every packet start that the head reaches must have one.
    if len(head) <= _TS_PACKET:
        return False
    return all(head[offset] == 0x47 for offset in range(0, len(head), _TS_PACKET))


def _sniff_ebml(head: bytes) -> SniffResult | None:
    """Matroska or WebM, from the DocType element of the EBML header."""
    doctype = _ebml_doctype(head)
    if doctype == b"webm":
        return WEBM
    if doctype == b"matroska":
        return MATROSKA
    return None


def _ebml_doctype(head: bytes) -> bytes | None:
    # Walk the children of the EBML header element instead of searching for
    # the string, so that "webm" inside some other element cannot decide it.
    pos = len(_EBML_MAGIC)
    size = _read_vint(head, pos, max_len=8)
    if size is None:
        return None
    header_size, pos = size
    end = min(len(head), pos + header_size)
    while pos < end:
        element_id = _read_element_id(head, pos)
        if element_id is None:
            return None
        eid, pos = element_id
        element_size = _read_vint(head, pos, max_len=8)
        if element_size is None:
            return None
        length, pos = element_size
        if eid == _EBML_DOCTYPE_ID:
            if pos + length > len(head):
                return None
            # EBML strings may be padded with NULs.
            return head[pos : pos + length].rstrip(b"\x00")
        pos += length
    return None


def _vint_length(first: int, max_len: int) -> int | None:
    """Number of bytes of an EBML variable-size integer, from its first byte."""
    for n in range(max_len):
        if first & (0x80 >> n):
            return n + 1
    return None


def _read_element_id(buf: bytes, pos: int) -> tuple[bytes, int] | None:
    # Element IDs keep their length marker bits, so compare raw bytes.
    if pos >= len(buf):
        return None
    n = _vint_length(buf[pos], max_len=4)
    if n is None or pos + n > len(buf):
        return None
    return buf[pos : pos + n], pos + n


def _read_vint(buf: bytes, pos: int, *, max_len: int) -> tuple[int, int] | None:
    if pos >= len(buf):
        return None
    n = _vint_length(buf[pos], max_len)
    if n is None or pos + n > len(buf):
        return None
    value = buf[pos] & (0xFF >> n)
    for byte in buf[pos + 1 : pos + n]:
        value = (value << 8) | byte
    return value, pos + n
