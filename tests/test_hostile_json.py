"""Hostile JSON bodies on every JSON endpoint: a clean 400, one log line, no traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import http
from tests.conftest import User
from tests.edge_helpers import captured_logs

# Deeper than any request body Frameflow takes (its own limit is checked below).
DEPTH = 32

HOSTILE: dict[str, bytes] = {
    "deep_arrays": b"[" * 30_000,
    "deep_objects": b'{"a":' * 12_000,
    "too_deep": b'{"a":' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "huge_integer": b'{"email": ' + b"1" * 5_000 + b', "password": "x"}',
    "integer_of_41_digits": b'{"priority": ' + b"9" * 41 + b"}",
    "huge_float": b'{"email": 1e400, "password": "x"}',
    "long_float": b'{"email": ' + b"9" * 5_000 + b'.5, "password": "x"}',
    "nan": b'{"email": NaN, "password": "x"}',
    "infinity": b'{"email": -Infinity, "password": "x"}',
    "invalid_utf8": b'{"email": "\xff\xfe@example.com", "password": "x"}',
    "encoded_surrogate": b'{"email": "\xed\xa0\x80@example.com", "password": "x"}',
    "escaped_surrogate": b'{"email": "\\ud800@example.com", "password": "x"}',
    "nul_in_string": b'{"email": "a\\u0000@example.com", "password": "x"}',
    "nul_in_key": b'{"em\\u0000ail": "a@example.com", "password": "x"}',
    "duplicate_keys": b'{"email": "a@example.com", "email": "b@example.com", "password": "x"}',
    "array": b"[1, 2]",
    "string": b'"text"',
    "null": b"null",
    "empty": b"",
    "blank": b" \r\n\t ",
    "truncated": b'{"email": "a@example.com", "pass',
    "trailing_garbage": b'{"email": "a@example.com"} x',
}

# Every route that reads a JSON body, with the headers it needs to get that far.
ENDPOINTS = [
    ("POST", "/api/v1/auth/register", False),
    ("POST", "/api/v1/auth/login", False),
    ("POST", "/api/v1/auth/refresh", False),
    ("POST", "/api/v1/auth/logout", False),
    ("POST", "/api/v1/auth/verify-email", False),
    ("POST", "/api/v1/auth/password-reset", False),
    ("POST", "/api/v1/auth/password-reset/confirm", False),
    ("PATCH", "/api/v1/me", True),
    ("POST", "/api/v1/me/password", True),
    ("POST", "/api/v1/webhooks", True),
    ("POST", "/api/v1/videos/{video}/jobs", True),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # Every hostile body goes to every endpoint: sign-up limits would answer 429 first.
    return make_settings(rate_limit_register_per_hour=0, rate_limit_login_per_minute=0)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_parse_json_object_refuses(name: str) -> None:
    assert http.MAX_JSON_DEPTH == DEPTH
    from server.errors import BadRequest

    with pytest.raises(BadRequest) as caught:
        http.parse_json_object(HOSTILE[name])
    assert caught.value.error_code == "invalid_json"
    assert len(caught.value.message) < 300  # no echo of a 30,000-byte body


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": [1, 2.5, -3, true, null, "\\u00e9"]}', {"a": [1, 2.5, -3, True, None, "é"]}),
        (b'\xef\xbb\xbf{"bom": 1}', {"bom": 1}),
        (b'{"a": ' + b"[" * (DEPTH - 1) + b"]" * (DEPTH - 1) + b"}", None),
        (b'{"big": ' + b"9" * 40 + b', "small": -' + b"9" * 40 + b"}", None),
        (b'{"s": "[[[{{{\\"]]]"}', {"s": '[[[{{{"]]]'}),
    ],
)
def test_parse_json_object_accepts(raw: bytes, expected: dict[str, Any] | None) -> None:
    parsed = http.parse_json_object(raw)
    if expected is not None:
        assert parsed == expected


async def test_every_json_endpoint_answers_400_without_traceback(
    client: TestClient[Any, Any], user: User
) -> None:
    from tests.edge_helpers import stored_video

    video = await stored_video(client.app, user.id, b"\x00" * 1024)
    with captured_logs() as logs:
        for method, path, auth in ENDPOINTS:
            for name, body in HOSTILE.items():
                headers = {"Content-Type": "application/json", **(user.headers if auth else {})}
                resp = await client.request(
                    method, path.format(video=video), data=body, headers=headers
                )
                assert resp.status == 400, (method, path, name, resp.status, await resp.text())
                assert (await resp.json())["error"]["code"] == "invalid_json", (path, name)
    assert logs.tracebacks() == []
    assert logs.errors() == []
    # One access line per request, nothing else.
    requests = len(ENDPOINTS) * len(HOSTILE)
    assert len(logs.named("request")) == requests
    assert len(logs.events) == requests


async def test_a_body_that_arrives_in_pieces_is_read_whole(
    client: TestClient[Any, Any], user: User
) -> None:
    """read() returns what has arrived so far; the reader must wait for the rest."""
    body = b'{"email": "%s", "password": "%s"}' % (user.email.encode(), user.password.encode())
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            "POST /api/v1/auth/login HTTP/1.1\r\n"
            f"Host: {client.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + body[:10]
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(body[10:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
