"""Turning what someone typed into a tsquery, without trusting it.

Only word characters reach `to_tsquery`, so tsquery syntax in the input
(`&`, `|`, `!`, `:*`, parentheses) is just separators, never operators. All
words must match; the last is a prefix, so "beach vac" finds "Beach
vacation" while the user is still typing.
"""

from __future__ import annotations

import re

from server.search.model import SearchText

MAX_QUERY_CHARS = 200
MAX_WORDS = 12
MAX_WORD_CHARS = 64
_WORD_RE = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    words = [w[:MAX_WORD_CHARS] for w in _WORD_RE.findall(text.lower())]
    return words[:MAX_WORDS]


def search_text(text: str) -> SearchText | None:
    """None when nothing searchable was typed (only punctuation or spaces)."""
    words = words_of(text)
    if not words:
        return None
    terms = [*words[:-1], words[-1] + ":*"]
    return SearchText(raw=" ".join(words), tsquery=" & ".join(terms))
