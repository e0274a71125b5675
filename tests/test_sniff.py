"""sniff(): the type of an upload from its first bytes, never its name."""

from __future__ import annotations

import dataclasses

import pytest

from server.media.sniff import (
    ALL_TYPES,
    ALLOWED_DEMUXERS,
    AVI,
    JPEG,
    MATROSKA,
    MP4,
    MPEG_TS,
    PNG,
    QUICKTIME,
    SNIFF_BYTES,
    WEBM,
    WEBP,
    SniffResult,
    sniff,
)


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    body = brand + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body


def ebml_header(doctype: bytes, *, void_first: bool = False) -> bytes:
    """An EBML header as mkvmerge/ffmpeg write it, with the given DocType."""
    children = b""
    if void_first:
        children += b"\xec\x83\x00\x00\x00"  # a 3-byte Void element first
    children += b"\x42\x86\x81\x01"  # EBMLVersion 1
    children += b"\x42\xf7\x81\x01"  # EBMLReadVersion 1
    children += b"\x42\xf2\x81\x04"  # EBMLMaxIDLength 4
    children += b"\x42\xf3\x81\x08"  # EBMLMaxSizeLength 8
    children += b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    children += b"\x42\x87\x81\x04\x42\x85\x81\x02"  # DocTypeVersion, DocTypeReadVersion
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(children)]) + children


def ts_packets(count: int) -> bytes:
    return b"".join(b"\x47\x40\x00\x10" + bytes(184) for _ in range(count))


# (head, expected) for every accepted type; heads are what real files start with.
ACCEPTED: list[tuple[str, bytes, SniffResult]] = [
    ("mp4 isom", ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41") + b"\x00\x00\x00\x08free", MP4),
    ("mp4 mp42", ftyp(b"mp42", b"mp42", b"isom"), MP4),
    ("m4v", ftyp(b"M4V ", b"M4V ", b"mp42"), MP4),
    ("3gp", ftyp(b"3gp4", b"3gp4"), MP4),
    ("mov with ftyp", ftyp(b"qt  ", b"qt  ") + b"\x00\x00\x00\x08wide", QUICKTIME),
    ("old mov, moov first", b"\x00\x00\x12\x34moov\x00\x00\x00\x6cmvhd", QUICKTIME),
    ("old mov, mdat first", b"\x00\x10\x00\x00mdat" + bytes(32), QUICKTIME),
    ("old mov, wide first", b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", QUICKTIME),
    ("old mov, free first", b"\x00\x00\x00\x10free" + bytes(8), QUICKTIME),
    ("old mov, skip first", b"\x00\x00\x00\x10skip" + bytes(8), QUICKTIME),
    ("webm", ebml_header(b"webm") + b"\x18\x53\x80\x67", WEBM),
    ("matroska", ebml_header(b"matroska") + b"\x18\x53\x80\x67", MATROSKA),
    ("webm after a Void element", ebml_header(b"webm", void_first=True), WEBM),
    ("matroska, NUL-padded doctype", ebml_header(b"matroska\x00\x00"), MATROSKA),
    ("avi", b"RIFF\x2e\x07\x01\x00AVI LIST\xca\x22\x00\x00hdrlavih", AVI),
    ("mpeg-ts, 3 packets", ts_packets(3), MPEG_TS),
    ("mpeg-ts, long head", ts_packets(10), MPEG_TS),
    ("mpeg-ts, 2 packets (small file)", ts_packets(2)[:200], MPEG_TS),
    ("jpeg jfif", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x02\x00", JPEG),
    ("jpeg exif", b"\xff\xd8\xff\xe1\x1c\x45Exif\x00\x00", JPEG),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x40", PNG),
    ("webp lossy", b"RIFF\x32\x0c\x00\x00WEBPVP8 \x26\x0c\x00\x00", WEBP),
    ("webp lossless", b"RIFF\x32\x0c\x00\x00WEBPVP8L", WEBP),
]


@pytest.mark.parametrize(
    ("head", "expected"), [(h, e) for _, h, e in ACCEPTED], ids=[name for name, _, _ in ACCEPTED]
)
def test_accepted_types(head: bytes, expected: SniffResult) -> None:
    assert sniff(head) == expected
    if expected != MPEG_TS:  # (zeros after a TS packet are a lost sync byte)
        # The caller usually hands over the first SNIFF_BYTES of a longer file.
        assert sniff(head.ljust(2 * SNIFF_BYTES, b"\x00")) == expected


REJECTED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("one byte", b"\xff"),
    ("two bytes of jpeg", b"\xff\xd8"),
    ("text", b"hello, this is not a video\n" * 10),
    ("text starting with G", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n" * 10),
    ("m3u8 playlist", b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/passwd\n"),
    ("m3u8 with BOM", b"\xef\xbb\xbf#EXTM3U\n#EXTINF:10,\nhttp://169.254.169.254/\n"),
    ("ffconcat", b"ffconcat version 1.0\nfile '/etc/passwd'\n"),
    ("concat list", b"file 'a.mp4'\nfile 'b.mp4'\n"),
    ("html", b"<!DOCTYPE html><html><body>hi</body></html>"),
    ("svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
    ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(30)),
    ("gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    ("wav", b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00"),
    ("riff, too short for a type", b"RIFF\x24\x08\x00"),
    ("ebml with another doctype", ebml_header(b"webmx")),
    ("ebml, doctype cut off", ebml_header(b"matroska")[:24]),
    ("ebml, no doctype", b"\x1a\x45\xdf\xa3\x84\x42\x86\x81\x01"),
    ("ebml, garbage size", b"\x1a\x45\xdf\xa3\x00\x00\x00\x00"),
    ("avif (ISO BMFF still image)", ftyp(b"avif", b"avif", b"mif1")),
    ("heic (ISO BMFF still image)", ftyp(b"heic", b"mif1", b"heic")),
    ("box with impossible size", b"\x00\x00\x00\x04ftypisom" + bytes(8)),
    ("unknown box", b"\x00\x00\x00\x20abcdisom" + bytes(24)),
    ("one ts sync byte only", b"\x47" + bytes(100)),
    ("ts sync lost at 188", ts_packets(1) + b"\x00" + ts_packets(2)[1:]),
    ("ts sync lost at 376", ts_packets(2) + b"\x48" + bytes(187)),
    ("zeros", bytes(SNIFF_BYTES)),
    ("mp3 with id3", b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE"),
]


@pytest.mark.parametrize("head", [h for _, h in REJECTED], ids=[name for name, _ in REJECTED])
def test_rejected(head: bytes) -> None:
    assert sniff(head) is None


def test_only_the_first_sniff_bytes_count() -> None:
    # Whatever follows the window (here a lost sync byte) cannot change the answer.
    head = ts_packets(3)[:SNIFF_BYTES] + b"\x00" * 1000
    assert sniff(head) == MPEG_TS


def test_ftyp_brand_decides_quicktime() -> None:
    assert sniff(ftyp(b"qt  ")) == QUICKTIME
    assert sniff(ftyp(b"isom", b"qt  ")) == MP4


def test_every_type_pins_an_allowed_demuxer() -> None:
    assert {
        "mov",
        "matroska",
        "avi",
        "mpegts",
        "jpeg_pipe",
        "png_pipe",
        "webp_pipe",
    } == ALLOWED_DEMUXERS
    for t in ALL_TYPES:
        assert t.demuxer in ALLOWED_DEMUXERS
        assert t.kind == ("image" if t.content_type.startswith("image/") else "video")
        assert not t.extension.startswith(".")
    # Formats that can make ffmpeg open other files are not on the list.
    assert not ALLOWED_DEMUXERS & {"hls", "concat", "image2", "tee", "lavfi", "dash", "m3u8"}


def test_result_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MP4.content_type = "text/html"  # type: ignore[misc]
