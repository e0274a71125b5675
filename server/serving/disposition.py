"""Safe file names: for storing an upload's display name, and for Content-Disposition.

A name comes from the user, so it is treated as hostile: no path, no control
characters (CR/LF would inject headers), no direction overrides (they make
`gpj.exe` look like `exe.jpg`), and bounded length.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

__all__ = ["MAX_FILENAME_BYTES", "content_disposition", "sanitize_filename"]

MAX_FILENAME_BYTES = 255
# Keep an extension up to this many characters when a long name is shortened.
_MAX_KEPT_EXTENSION = 16
_PATH_SEPARATORS_RE = re.compile(r"[/\\]")
# Bidi embeddings, overrides, isolates and marks; line/paragraph separators.
_INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_INVISIBLE |= {"\u2028", "\u2029"}
# Printable ASCII that must still not reach the quoted fallback: quote and
# backslash end or escape it, a slash is a path, and % or ; trip up UAs that
# decode or split the plain `filename` (RFC 6266 Appendix D).
_FALLBACK_UNSAFE = frozenset('"\\/%;')
# Parameter syntax that a naive parser could take for the real thing when it
# appears inside the quoted fallback: any `name*=`, `name*0*=`, `name*1=`
# (RFC 8187/2231; never part of a real file name) and a plain `filename=`.
_PARAMETER_LOOKALIKE_RE = re.compile(r"[\w!#$&+.^`|~-]*\*[0-9*]*\s*=|filename\s*=", re.IGNORECASE)
# RFC 5987 attr-char beyond the letters, digits and `_.-~` that quote() keeps.
_ATTR_CHAR_EXTRA = "!#$&+^`|"


def sanitize_filename(name: str) -> str:
    """The display name to store for an upload; "upload" when nothing safe is left."""
    return _clean(name) or "upload"


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """A Content-Disposition value with an ASCII `filename` and, if needed, `filename*`."""
    disposition = "inline" if inline else "attachment"
    name = _clean(filename)
    fallback = _ascii_fallback(name) or "download"
    header = f'{disposition}; filename="{fallback}"'
    if name and name != fallback:
        header += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHAR_EXTRA)}"
    return header


def _clean(name: str) -> str:
    """The last path component, NFC, without control or bidi characters, at most 255 bytes."""
    name = unicodedata.normalize("NFC", name)
    # Windows clients send `C:\dir\file`, so both separators count.
    name = _PATH_SEPARATORS_RE.split(name)[-1]
    name = "".join(ch for ch in name if not _is_unsafe_char(ch))
    # Leading dots hide files or mean "..": leading/trailing blanks are invisible.
    name = name.lstrip(". \t").rstrip(" \t")
    return _truncate_utf8(name, MAX_FILENAME_BYTES)


def _is_unsafe_char(ch: str) -> bool:
    # Cs: lone surrogates cannot be encoded as UTF-8 at all.
    return unicodedata.category(ch) in ("Cc", "Cs") or ch in _INVISIBLE


def _truncate_utf8(name: str, limit: int) -> str:
    """`name` in at most `limit` UTF-8 bytes, cut between characters, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) <= _MAX_KEPT_EXTENSION:
        suffix = dot + ext
        return _cut(stem, limit - len(suffix.encode())) + suffix
    return _cut(name, limit)


def _cut(text: str, limit: int) -> str:
    # Decoding with "ignore" drops a character split by the byte cut.
    raw = text.encode()[:limit]
    return raw.decode("utf-8", "ignore").rstrip(" \t")


def _ascii_fallback(name: str) -> str:
    # "café" → "cafe": decompose, drop the accents, then replace what is left.
    decomposed = unicodedata.normalize("NFKD", name)
    chars = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if ch.isascii() and ch.isprintable() and ch not in _FALLBACK_UNSAFE:
            chars.append(ch)
        else:
            chars.append("_")
    fallback = _PARAMETER_LOOKALIKE_RE.sub("", "".join(chars))
    return fallback.lstrip(". ").rstrip(" ")[:MAX_FILENAME_BYTES]
