"""Signed links with their secret part taken out, for text that goes to logs.

A signed link is a bearer credential until it expires: whoever reads the log
line can open the object. These forms exist, and all are cut here:

- query signatures (`/api/v1/videos/{id}/content?expires=…&signature=…`, and
  S3 presigned URLs' `X-Amz-Signature` / `X-Amz-Security-Token`): the value
  is replaced;
- path tokens (`/api/v1/jobs/{id}/t/{token}/{name}`, see `jobs/links.py`):
  the token segment is replaced;
- account links (`/#verify=…`, `/#reset=…`, see `notify/account_email.py`):
  the token after `verify=` or `reset=` is replaced.

What remains (host, path, output name, expiry) still says what was linked.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# `signature=` as a query parameter, whatever follows it up to the next
# separator (its value is base64url, but a mangled one must go too); also an
# S3 presigned URL's `X-Amz-Signature` and `X-Amz-Security-Token`.
_QUERY_SIGNATURE = re.compile(r"(?i)([?&;](?:x-amz-)?(?:signature|security-token)=)[^&;#\s]*")
# The segment after `/t/` in a job output path: `{expires}.{signature}` or longer.
_PATH_TOKEN = re.compile(r"(/jobs/[^/\s]+/t/)[^/\s]+")
# A verification or reset token in a page link's fragment (or a query, should one appear).
_ACCOUNT_TOKEN = re.compile(r"(?i)([#?&;](?:verify|reset)=)[^&;#\s]*")


def redact_links(text: str) -> str:
    """`text` with every URL signature and path token replaced by `[redacted]`."""
    text = _QUERY_SIGNATURE.sub(rf"\g<1>{REDACTED}", text)
    text = _ACCOUNT_TOKEN.sub(rf"\g<1>{REDACTED}", text)
    return _PATH_TOKEN.sub(rf"\g<1>{REDACTED}", text)
