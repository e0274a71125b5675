"""Safe file names for storage and for Content-Disposition."""

from __future__ import annotations

import re
import unicodedata
from email import message_from_string
from urllib.parse import unquote

import pytest

from server.serving.disposition import content_disposition, sanitize_filename

# --- sanitize_filename -----------------------------------------------------

SANITIZE = [
    ("video.mp4", "video.mp4"),
    ("My Holiday (2024).mov", "My Holiday (2024).mov"),
    # Path components, POSIX and Windows.
    ("/etc/passwd", "passwd"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
    ("dir\\..\\..\\x.mp4", "x.mp4"),
    ("a/b\\c.mp4", "c.mp4"),
    ("dir/", "upload"),
    # Dots and blanks.
    (".", "upload"),
    ("..", "upload"),
    ("...", "upload"),
    (".hidden.mp4", "hidden.mp4"),
    ("  .. spaced.mp4  ", "spaced.mp4"),
    ("name.", "name."),
    # Control characters, NUL, DEL, C1.
    ("a\x00b.mp4", "ab.mp4"),
    ("evil.mp4\x00.exe", "evil.mp4.exe"),
    ("a\r\nSet-Cookie: x=1.mp4", "aSet-Cookie: x=1.mp4"),
    ("tab\there.mp4", "tabhere.mp4"),
    ("del\x7f.mp4", "del.mp4"),
    ("c1\x85\x9b.mp4", "c1.mp4"),
    # Direction overrides (the "gpj.exe" spoof) and line separators.
    ("clip\u202egpj.exe", "clipgpj.exe"),
    ("a\u2066b\u2069\u200f.mp4", "ab.mp4"),
    ("line\u2028break.mp4", "linebreak.mp4"),
    # Lone surrogates cannot be stored as UTF-8.
    ("bad\ud800.mp4", "bad.mp4"),
    # Shell-looking names are just names once stored.
    ('"; rm -rf / #.mp4', "#.mp4"),
    ("$(reboot).mp4", "$(reboot).mp4"),
    # Unicode is kept, in NFC.
    ("видео.mp4", "видео.mp4"),
    ("视频 🎬.mp4", "视频 🎬.mp4"),
    ("cafe\u0301.mp4", "caf\u00e9.mp4"),
    # Empty after cleaning.
    ("", "upload"),
    ("\x00\x01\r\n", "upload"),
    ("///", "upload"),
    ("\u202e", "upload"),
]


@pytest.mark.parametrize(("name", "expected"), SANITIZE)
def test_sanitize_filename(name: str, expected: str) -> None:
    assert sanitize_filename(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "a" * 300,
        "a" * 300 + ".mp4",
        "é" * 200 + ".mp4",
        "🎬" * 100,
        "视" * 100 + ".mkv",
        "x." + "y" * 300,
    ],
    ids=["ascii", "ascii-ext", "two-byte-ext", "four-byte", "three-byte-ext", "long-ext"],
)
def test_long_names_fit_in_255_utf8_bytes(name: str) -> None:
    clean = sanitize_filename(name)
    encoded = clean.encode("utf-8")
    assert len(encoded) <= 255
    assert len(encoded) > 255 - 4  # cut at most one character short of the limit
    assert encoded.decode("utf-8") == clean  # no character was split
    assert clean == unicodedata.normalize("NFC", clean)


@pytest.mark.parametrize(
    ("name", "extension"),
    [("a" * 300 + ".mp4", ".mp4"), ("é" * 200 + ".mp4", ".mp4"), ("视" * 100 + ".mkv", ".mkv")],
)
def test_long_names_keep_a_short_extension(name: str, extension: str) -> None:
    assert sanitize_filename(name).endswith(extension)


def test_name_of_exactly_255_bytes_is_unchanged() -> None:
    name = "a" * 251 + ".mp4"
    assert sanitize_filename(name) == name


def test_sanitize_is_idempotent() -> None:
    for name, _ in SANITIZE:
        once = sanitize_filename(name)
        assert sanitize_filename(once) == once


# --- content_disposition ---------------------------------------------------

DISPOSITION = [
    ("video.mp4", False, 'attachment; filename="video.mp4"'),
    ("video.mp4", True, 'inline; filename="video.mp4"'),
    ("frames (1).zip", False, 'attachment; filename="frames (1).zip"'),
    ("/srv/data/out.zip", False, 'attachment; filename="out.zip"'),
    ("C:\\temp\\out.zip", False, 'attachment; filename="out.zip"'),
    (
        "café.mp4",
        False,
        "attachment; filename=\"cafe.mp4\"; filename*=UTF-8''caf%C3%A9.mp4",
    ),
    (
        "视频.mp4",
        False,
        "attachment; filename=\"__.mp4\"; filename*=UTF-8''%E8%A7%86%E9%A2%91.mp4",
    ),
    (
        'say "hi".mp4',
        False,
        "attachment; filename=\"say _hi_.mp4\"; filename*=UTF-8''say%20%22hi%22.mp4",
    ),
    (
        "back\\slash.mp4",  # a Windows path: only the last component is kept
        False,
        'attachment; filename="slash.mp4"',
    ),
    (
        "100%.mp4",
        False,
        "attachment; filename=\"100_.mp4\"; filename*=UTF-8''100%25.mp4",
    ),
    # Everything up to the slash is a "directory"; the leading blank goes too.
    ('"; rm -rf / #.mp4', False, 'attachment; filename="#.mp4"'),
    (
        'x"; rm -rf .mp4',
        False,
        "attachment; filename=\"x__ rm -rf .mp4\"; filename*=UTF-8''x%22%3B%20rm%20-rf%20.mp4",
    ),
    ("", False, 'attachment; filename="download"'),
    ("..", True, 'inline; filename="download"'),
    ("\r\n", False, 'attachment; filename="download"'),
    ("🎬", False, "attachment; filename=\"_\"; filename*=UTF-8''%F0%9F%8E%AC"),
    ("a!#$&+^`|~-_.b", False, 'attachment; filename="a!#$&+^`|~-_.b"'),
]


@pytest.mark.parametrize(("name", "inline", "expected"), DISPOSITION)
def test_content_disposition(name: str, inline: bool, expected: str) -> None:
    assert content_disposition(name, inline=inline) == expected


HOSTILE = [
    "a\r\nSet-Cookie: session=evil",
    "a\nSet-Cookie: x=1\r\n\r\n<html>",
    "a\rb",
    'a"; filename="evil.exe',
    "a\x00b",
    "a\x0bb\x0cc",
    "a\u2028b\u2029c",
    "\u0085next-line",
    'x\\"; y',
    "..\\..\\windows\\system32\\evil.dll",
]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("inline", [False, True])
def test_hostile_names_cannot_escape_the_header(name: str, inline: bool) -> None:
    header = content_disposition(name, inline=inline)
    assert header.isascii()
    assert all(0x20 <= ord(ch) < 0x7F for ch in header)  # no CR, LF, NUL or other controls
    # Exactly one quoted fallback: two quotes, both belonging to filename="...".
    assert header.count('"') == 2
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert "\\" not in fallback and "/" not in fallback and ";" not in fallback


def test_filename_star_decodes_to_the_sanitized_name() -> None:
    name = "Ünïcödé \u2013 视频 🎬 100%.mp4"
    header = content_disposition(name)
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded, encoding="utf-8", errors="strict") == sanitize_filename(name)
    attr_chars = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~%")
    assert set(encoded) <= attr_chars


def test_long_names_are_capped() -> None:
    header = content_disposition("é" * 1000 + ".mp4")
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert len(fallback) <= 255
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert len(unquote(encoded).encode("utf-8")) <= 255
    assert unquote(encoded).endswith(".mp4")


# Parameter syntax in a name must not survive into the quoted fallback, where a
# naive parser (a regex for `filename*=`) would read it as the real parameter.
PARAMETER_LOOKALIKES = [
    ("a\"; filename*=UTF-8''e.html", "a__ UTF-8''e.html"),
    ("a; FILENAME*=utf-8''e.html", "a_ utf-8''e.html"),
    ("x filename = evil.exe", "x  evil.exe"),
    ("a; name*0*=x; filename*1=y.exe", "a_ x_ y.exe"),
    ("formula=1+1.mp4", "formula=1+1.mp4"),
]


@pytest.mark.parametrize(("name", "fallback"), PARAMETER_LOOKALIKES)
def test_the_fallback_carries_no_parameter_syntax(name: str, fallback: str) -> None:
    header = content_disposition(name)
    assert header.split('filename="', 1)[1].split('"', 1)[0] == fallback
    # The only `filename*=` is ours (if any), and it decodes to the whole name.
    ours = re.findall(r"filename\*\s*=", header, re.IGNORECASE)
    assert len(ours) == (0 if fallback == name else 1)
    if ours:
        assert unquote(header.rsplit("filename*=UTF-8''", 1)[1]) == name


@pytest.mark.parametrize(
    "name",
    [
        "video.mp4",
        "café.mp4",
        "视频 🎬.mp4",
        'x"; rm -rf .mp4',
        "100%.mp4",
        *HOSTILE,
        *(name for name, _ in PARAMETER_LOOKALIKES),
    ],
)
def test_a_standard_parser_sees_only_our_parameters(name: str) -> None:
    header = content_disposition(name)
    message = message_from_string(f"Content-Disposition: {header}\n\n")
    params = message.get_params(header="content-disposition")
    assert params is not None
    names = [key for key, _ in params]
    # One disposition, one fallback, at most one filename* (which email folds into "filename").
    assert names in (["attachment", "filename"], ["attachment", "filename", "filename"])
    assert params[1][1] == header.split('filename="', 1)[1].split('"', 1)[0]
    assert len(message.keys()) == 1  # nothing smuggled in as a second header
