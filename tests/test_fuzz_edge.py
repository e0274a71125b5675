"""Property: whatever a client sends — malformed or extreme JSON, path and query
parameters, headers, multipart bodies — the server answers below 500.

Bounded and reproducible: derandomized, a fixed number of examples per
property (about half a minute in all). Webhook registration is never fuzzed:
a generated URL would make the server call it when a job ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from yarl import URL

from config.settings import Settings
from tests.conftest import User
from tests.edge_helpers import stored_video, succeeded_job

FUZZ = hypothesis_settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    # One app and one client serve every example of a property: that is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        workers_enabled=False,  # created jobs stay queued: no ffmpeg on fuzzed input
        rate_limit_login_per_minute=0,
        rate_limit_register_per_hour=0,
        rate_limit_refresh_per_minute=0,
        rate_limit_uploads_per_hour=0,
        rate_limit_jobs_per_minute=0,
        max_upload_bytes=1024 * 1024,
        body_idle_timeout_seconds=5.0,
    )


@pytest.fixture
async def known(client: TestClient[Any, Any], user: User) -> dict[str, str]:
    """Ids that exist, so fuzzed requests also reach the code behind the 404s."""
    video = await stored_video(client.app, user.id, b"\x00" * 2048)
    job = await succeeded_job(client.app, user.id, video, "thumbnail.jpg", b"j" * 64)
    return {"video": str(video), "job": str(job)}


def no_5xx(status: int, what: object) -> None:
    assert status < 500, what


# --- JSON bodies -------------------------------------------------------------

EXTREME_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63, -(2**63) - 1, 10**400, 1e308, 5e-324, -0.0, 0]),
)
HOSTILE_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=()) | st.sampled_from("\x00\u202e\ufeff"),
    max_size=40,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | EXTREME_NUMBERS | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["email", "password", "refresh_token", "operation", "params", "priority"]
OBJECTS = st.dictionaries(st.sampled_from(FIELDS) | HOSTILE_TEXT, JSON_VALUES, max_size=6)


def _dumps(value: Any) -> bytes:
    # Python's json writes big ints as digits and refuses nothing: what a hostile client sends.
    return json.dumps(value).encode()


JSON_BODIES = st.one_of(
    OBJECTS.map(_dumps),
    JSON_VALUES.map(_dumps),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * (n % 3)),
    st.integers(min_value=1, max_value=6000).map(lambda n: b'{"priority": ' + b"9" * n + b"}"),
    st.binary(max_size=300),
    OBJECTS.map(_dumps).flatmap(lambda raw: st.integers(0, len(raw)).map(lambda i: raw[:i])),
)
JSON_ROUTES = [
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("PATCH", "/api/v1/me"),
    ("POST", "/api/v1/me/password"),
    ("POST", "/api/v1/videos/{video}/jobs"),
    ("PATCH", "/api/v1/admin/users/{video}"),
]


@FUZZ
@given(route=st.sampled_from(JSON_ROUTES), body=JSON_BODIES, auth=st.booleans())
async def test_json_bodies(
    client: TestClient[Any, Any],
    user: User,
    known: dict[str, str],
    route: tuple[str, str],
    body: bytes,
    auth: bool,
) -> None:
    method, path = route
    headers = {"Content-Type": "application/json", **(user.headers if auth else {})}
    resp = await client.request(method, path.format(**known), data=body, headers=headers)
    no_5xx(resp.status, (method, path, body[:200], await resp.text()))


# --- path and query parameters --------------------------------------------------

PERCENT = st.lists(
    st.sampled_from(["%00", "%ff", "%ed%a0%80", "%2f", "%2e%2e", "%0d%0a", "%25", "%c0%af", "%"]),
    max_size=3,
).map("".join)
SEGMENT_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=30).map(
    lambda s: str(URL.build(path="/" + s)).lstrip("/")
)
SEGMENTS = st.one_of(
    SEGMENT_TEXT,
    st.tuples(SEGMENT_TEXT, PERCENT, SEGMENT_TEXT).map("".join),
    st.sampled_from(["", ".", "..", "x" * 2000, "00000000-0000-0000-0000-000000000000"]),
    st.just("{video}"),
    st.just("{job}"),
)
QUERY_KEYS = ["limit", "cursor", "status", "video_id", "ttl", "process", "download", "expires",
              "signature"]  # fmt: skip
QUERY_VALUES = st.one_of(
    SEGMENT_TEXT,
    PERCENT,
    st.integers().map(str),
    st.sampled_from(["-1", "1e9", "0x10", "99999999999999999999999", "", "true", "frames,x"]),
)
QUERIES = st.lists(
    st.tuples(st.sampled_from(QUERY_KEYS) | SEGMENT_TEXT, QUERY_VALUES), max_size=4
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
PATHS = [
    "/api/v1/videos/{0}",
    "/api/v1/videos/{0}/content",
    "/api/v1/videos/{0}/content-url",
    "/api/v1/videos",
    "/api/v1/jobs",
    "/api/v1/jobs/{0}",
    "/api/v1/jobs/{0}/events",
    "/api/v1/jobs/{0}/outputs/{1}",
    "/api/v1/jobs/{job}/outputs/{1}",
    "/api/v1/jobs/{0}/t/{1}/{2}",
    "/api/v1/jobs/{job}/t/{1}/thumbnail.jpg",
    "/api/v1/webhooks/{0}/deliveries",
    "/api/v1/admin/users/{0}",
    "/{0}",
    "/static/{0}",
]


@FUZZ
@given(
    template=st.sampled_from(PATHS),
    parts=st.lists(SEGMENTS, min_size=3, max_size=3),
    query=QUERIES,
    method=st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS"]),
)
async def test_path_and_query_parameters(
    client: TestClient[Any, Any],
    user: User,
    known: dict[str, str],
    template: str,
    parts: list[str],
    query: str,
    method: str,
) -> None:
    filled = [p.format(**known) if p in ("{video}", "{job}") else p for p in parts]
    path = template.format(*filled, **known)
    url = URL(path + ("?" + query if query else ""), encoded=True)
    resp = await client.request(method, url, headers=user.headers)
    no_5xx(resp.status, (method, str(url), await resp.text()))


# --- request headers ---------------------------------------------------------------

HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
).map(str.strip)
HEADER_VALUES = {
    "Range": st.one_of(
        HEADER_TEXT,
        st.lists(
            st.tuples(
                st.integers(-(10**25), 10**25) | st.none(), st.integers(0, 10**25) | st.none()
            ),
            max_size=5,
        ).map(
            lambda specs: (
                "bytes="
                + ",".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in specs)
            )
        ),
    ),
    "If-Range": HEADER_TEXT | st.sampled_from(['"x"', 'W/"x"', "Sun, 06 Nov 1994 08:49:37 GMT"]),
    "If-None-Match": HEADER_TEXT | st.sampled_from(["*", '"a", W/"b"', '"' * 50]),
    "If-Modified-Since": HEADER_TEXT | st.sampled_from(["Fri, 31 Dec 9999 23:59:59 GMT"]),
    "X-Request-ID": HEADER_TEXT,
    "Authorization": HEADER_TEXT | HEADER_TEXT.map(lambda t: "Bearer " + t),
    "Content-Type": HEADER_TEXT,
    "Accept": HEADER_TEXT,
    "Origin": HEADER_TEXT,
    "X-Forwarded-For": HEADER_TEXT,
}
HEADER_TARGETS = [
    ("GET", "/api/v1/videos/{video}/content"),
    ("HEAD", "/api/v1/videos/{video}/content"),
    ("GET", "/api/v1/jobs/{job}/outputs/thumbnail.jpg"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/videos"),
    ("GET", "/health/live"),
    ("GET", "/metrics"),
]


@FUZZ
@given(
    target=st.sampled_from(HEADER_TARGETS),
    headers=st.fixed_dictionaries(
        {}, optional={name: values for name, values in HEADER_VALUES.items()}
    ),
    keep_auth=st.booleans(),
)
async def test_request_headers(
    client: TestClient[Any, Any],
    user: User,
    known: dict[str, str],
    target: tuple[str, str],
    headers: dict[str, str],
    keep_auth: bool,
) -> None:
    method, path = target
    sent = {**(user.headers if keep_auth else {}), **headers}
    resp = await client.request(method, path.format(**known), headers=sent)
    no_5xx(resp.status, (method, path, sent, await resp.text()))


# --- multipart and raw upload bodies ---------------------------------------------------

BOUNDARY = "fuzzBOUNDARY"
MP4_HEAD = bytes.fromhex("0000001c667479706973706d0000020069736f6d69736f32617663316d703431")
PART_HEADERS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b'Content-Disposition: form-data; name="file"; filename="a.mp4"',
                b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E2%80%AE.mp4",
                b'Content-Disposition: form-data; name="ttl"',
                b'Content-Disposition: form-data; name="process"',
                b"Content-Disposition: form-data",
                b"Content-Type: video/mp4",
                b"Content-Type: multipart/mixed; boundary=inner",
                b"Content-Transfer-Encoding: base64",
                b"X-Long: " + b"a" * 9000,
                b"no colon here",
            ]
        ),
        st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    ),
    max_size=4,
)
PART_BODIES = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=300).map(lambda b: MP4_HEAD + b),
    st.sampled_from([b"3600", b"-1", b"9" * 50, b"frames,thumbnail", b"nope"]),
)
PARTS = st.lists(
    st.tuples(PART_HEADERS, PART_BODIES).map(lambda hb: b"\r\n".join(hb[0]) + b"\r\n\r\n" + hb[1]),
    max_size=3,
)
ENDINGS = st.sampled_from([b"--\r\n", b"--", b"", b"\r\n", b"-- trailing junk", b"x"])


def multipart(parts: list[bytes], ending: bytes) -> bytes:
    delimiter = b"--" + BOUNDARY.encode()
    return b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts) + delimiter + ending


@FUZZ
@given(
    parts=PARTS,
    ending=ENDINGS,
    cut=st.none() | st.integers(min_value=0, max_value=2000),
    content_type=st.sampled_from(
        [
            f"multipart/form-data; boundary={BOUNDARY}",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            f'multipart/form-data; boundary="{BOUNDARY}"; charset=x',
            "multipart/mixed; boundary=" + BOUNDARY,
        ]
    ),
    query=st.sampled_from(["", "?ttl=-5", "?process=bogus", "?ttl=" + "9" * 40, "?process=%00"]),
)
async def test_multipart_bodies(
    client: TestClient[Any, Any],
    user: User,
    parts: list[bytes],
    ending: bytes,
    cut: int | None,
    content_type: str,
    query: str,
) -> None:
    body = multipart(parts, ending)
    body = body if cut is None else body[:cut]
    resp = await client.post(
        URL("/api/v1/uploads" + query, encoded=True),
        data=body,
        headers={**user.headers, "Content-Type": content_type},
    )
    no_5xx(resp.status, (content_type, query, body[:300], await resp.text()))


@FUZZ
@given(
    name=SEGMENTS.filter(lambda s: s not in ("{video}", "{job}")),
    body=st.one_of(st.binary(max_size=800), st.binary(max_size=400).map(lambda b: MP4_HEAD + b)),
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Content-Range": HEADER_TEXT | st.just("bytes 0-99/100"),
            "Content-Type": HEADER_TEXT,
            "Expect": st.sampled_from(["100-continue", "nonsense", ""]),
        },
    ),
    query=st.sampled_from(["", "?ttl=60", "?ttl=abc", "?process=frames", "?process=" + "x," * 30]),
)
async def test_raw_put_uploads(
    client: TestClient[Any, Any],
    user: User,
    name: str,
    body: bytes,
    headers: dict[str, str],
    query: str,
) -> None:
    url = URL("/api/v1/uploads/" + name + query, encoded=True)
    resp = await client.put(url, data=body, headers={**user.headers, **headers})
    no_5xx(resp.status, (str(url), headers, body[:100], await resp.text()))
