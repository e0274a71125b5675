"""Caption files read into cues and written back as clean WebVTT (pure, table-tested).

Either format comes in: a file starting with `WEBVTT` is read as WebVTT, anything
else as SRT (`1`, `00:00:01,000 --> 00:00:02,500`, text, blank line). What
comes out is always WebVTT made by this module from the cues, so nothing of
the input passes through unchecked:

- timings are parsed and re-written (`HH:MM:SS.mmm`); an end before its start,
  or a time past `MAX_SECONDS`, is refused naming the cue;
- cue settings are kept only when WebVTT knows them (`align:center`, ...);
- in cue text, only WebVTT's own markup survives: `<b> <i> <u> <c.class>
  <v Speaker> <lang xx> <ruby> <rt>` and karaoke timestamps. Other tags
  (`<font color>`, `<script>`, `<a href>`) are removed and their text kept;
  SSA overrides (`{\\an8}`) are dropped; a stray `<` or `&` is escaped; `-->`
  cannot appear in text;
- STYLE and REGION blocks (CSS, positioning) and NOTE comments are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CUES = 20_000
MAX_SECONDS = 100 * 3600.0
MAX_CUE_TEXT = 2000
MAX_IDENTIFIER = 100


class CaptionError(ValueError):
    """The file is not valid SRT or WebVTT; the message names where."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # sanitised WebVTT cue text
    identifier: str = ""
    settings: str = ""


_TIME = re.compile(r"^(?:(\d{1,3}):)?([0-5]?\d):([0-5]\d)[.,](\d{1,3})$")
_TIMING = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)(.*)$")
_SETTING = {
    "vertical": re.compile(r"^(rl|lr)$"),
    "line": re.compile(r"^-?\d+(\.\d+)?%?(,(start|center|end))?$"),
    "position": re.compile(r"^\d+(\.\d+)?%(,(line-left|center|line-right|auto))?$"),
    "size": re.compile(r"^\d+(\.\d+)?%$"),
    "align": re.compile(r"^(start|center|end|left|right)$"),
}
_ALLOWED_TAGS = {"b", "i", "u", "c", "v", "lang", "ruby", "rt"}
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)((?:\.[A-Za-z0-9_-]+)*)([ \t][^<>]*)?>")
_TIMESTAMP_TAG = re.compile(r"<(\d{1,3}:)?[0-5]\d:[0-5]\d\.\d{3}>")
# What a browser would take for a tag: `<` then a letter, `/` or a digit (a timestamp).
_TAG_LIKE = re.compile(r"<(?:/?[A-Za-z]|\d)[^<>]*>")
_SSA = re.compile(r"\{\\[^{}]*\}")
_ENTITY = re.compile(r"&(amp|lt|gt|lrm|rlm|nbsp|#\d{1,7}|#x[0-9A-Fa-f]{1,6});")


def parse_time(raw: str) -> float:
    match = _TIME.match(raw)
    if match is None:
        raise ValueError(raw)
    hours, minutes, seconds, millis = match.groups()
    value = (
        int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000
    )
    if value > MAX_SECONDS:
        raise ValueError(raw)
    return value


def format_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _settings(raw: str) -> str:
    kept = []
    for item in raw.split():
        name, _, value = item.partition(":")
        pattern = _SETTING.get(name)
        if pattern is not None and pattern.match(value):
            kept.append(f"{name}:{value}")
    return " ".join(kept)


def _escape_text(text: str) -> str:
    """Escape `&` that starts no entity, and `<`/`>` that are not markup."""
    out = []
    for piece in re.split(r"(&[^;\s]{1,10};)", text):
        if _ENTITY.fullmatch(piece):
            out.append(piece)
        else:
            out.append(piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def sanitize_cue_text(text: str) -> str:
    """Only WebVTT's own markup, balanced enough for a browser; everything else as text."""
    text = _SSA.sub("", text)
    out: list[str] = []
    pos = 0
    for match in _TAG_LIKE.finditer(text):
        out.append(_escape_text(text[pos : match.start()]))
        pos = match.end()
        tag = match.group(0)
        if _TIMESTAMP_TAG.fullmatch(tag):
            out.append(tag)
            continue
        parsed = _TAG.fullmatch(tag)
        if parsed is None:
            continue
        closing, name, classes, annotation = parsed.groups()
        name = name.lower()
        if name not in _ALLOWED_TAGS:
            continue  # <font>, <script>, <a>, ...: the tag goes, its text stays
        if closing:
            out.append(f"</{name}>")
            continue
        note = ""
        if name in {"v", "lang"} and annotation:
            note = " " + _escape_text(annotation.strip())
        out.append(f"<{name}{classes}{note}>")
    out.append(_escape_text(text[pos:]))
    cleaned = "".join(out).replace("-->", "--&gt;")
    lines = [line.rstrip() for line in cleaned.split("\n")]
    return "\n".join(line for line in lines if line)[:MAX_CUE_TEXT]


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _cue(lines: list[str], number: int, timing_at: int, identifier: str) -> Cue:
    timing = _TIMING.match(lines[timing_at])
    if timing is None:
        raise CaptionError(f"cue {number}: expected 'start --> end'")
    try:
        start, end = parse_time(timing.group(1)), parse_time(timing.group(2))
    except ValueError as exc:
        raise CaptionError(f"cue {number}: {str(exc)[:40]!r} is not a time") from None
    if end < start:
        raise CaptionError(f"cue {number}: ends before it starts")
    text = sanitize_cue_text("\n".join(lines[timing_at + 1 :]))
    return Cue(
        start, end, text, identifier[:MAX_IDENTIFIER].replace("-->", ""), _settings(timing.group(3))
    )


def parse_srt(text: str) -> list[Cue]:
    cues = []
    for number, lines in enumerate(_blocks(text), start=1):
        timing_at = 1 if len(lines) > 1 and "-->" not in lines[0] else 0
        cue = _cue(lines, number, timing_at, "")
        if cue.text:
            cues.append(cue)
    return cues


def parse_vtt(text: str) -> list[Cue]:
    blocks = _blocks(text)
    header = blocks[0][0] if blocks else ""
    if not re.match(r"^WEBVTT([ \t].*)?$", header):
        raise CaptionError("a WebVTT file starts with 'WEBVTT'")
    cues = []
    for number, lines in enumerate(blocks[1:], start=1):
        first = lines[0]
        if first.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in first:
            continue
        timing_at = 0 if "-->" in first else 1
        if timing_at >= len(lines):
            raise CaptionError(f"cue {number}: expected 'start --> end'")
        cue = _cue(lines, number, timing_at, first if timing_at else "")
        if cue.text:
            cues.append(cue)
    return cues


def read_captions(data: bytes) -> tuple[list[Cue], str]:
    """The cues of an SRT or WebVTT file and which it was ("srt" or "vtt")."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CaptionError("captions must be UTF-8 text") from None
    if "\x00" in text:
        raise CaptionError("captions must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fmt = "vtt" if text.lstrip(" \t\n").startswith("WEBVTT") else "srt"
    cues = parse_vtt(text.lstrip(" \t\n")) if fmt == "vtt" else parse_srt(text)
    if not cues:
        raise CaptionError("no cues found")
    if len(cues) > MAX_CUES:
        raise CaptionError(f"at most {MAX_CUES} cues")
    return cues, fmt


def write_vtt(cues: list[Cue]) -> str:
    parts = ["WEBVTT", ""]
    for cue in cues:
        if cue.identifier:
            parts.append(cue.identifier)
        timing = f"{format_time(cue.start)} --> {format_time(cue.end)}"
        parts.append(f"{timing} {cue.settings}".rstrip())
        parts.append(cue.text)
        parts.append("")
    return "\n".join(parts)
