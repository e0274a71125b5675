"""`/metrics` as a real Prometheus scrape sees it: its Content-Type and its text."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CONTENT_TYPE_LATEST

# RFC 9110 §8.3.1: media-type = type "/" subtype parameters, where
# parameters = *( OWS ";" OWS [ parameter ] ) and parameter = name "=" value.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_PARAMETER = rf"{_TOKEN}=(?:{_TOKEN}|{_QUOTED})"
_MEDIA_TYPE_RE = re.compile(rf"({_TOKEN})/({_TOKEN})((?:[ \t]*;[ \t]*(?:{_PARAMETER})?)*)")
_PARAMETER_RE = re.compile(rf"({_TOKEN})=({_TOKEN}|{_QUOTED})")


def strict_media_type(value: str) -> tuple[str, dict[str, str]]:
    """(type/subtype, parameters) per RFC 9110, refusing what Go's mime parser refuses:
    malformed syntax and a parameter given twice."""
    match = _MEDIA_TYPE_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"not a media type: {value!r}")
    params: dict[str, str] = {}
    for name, raw in _PARAMETER_RE.findall(match.group(3)):
        key = name.lower()
        if key in params:
            raise ValueError(f"parameter {key!r} given twice in {value!r}")
        params[key] = raw.strip('"')
    return f"{match.group(1)}/{match.group(2)}".lower(), params


@pytest.mark.parametrize(
    "value",
    [
        "text/plain; charset=1.0.0; charset=utf-8",  # what /metrics used to send
        "text/plain; version",
        "text/plain;; =x",
        "text plain",
    ],
)
def test_the_strict_parser_refuses_bad_media_types(value: str) -> None:
    with pytest.raises(ValueError):
        strict_media_type(value)


async def test_content_type_is_prometheus_clients_own(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/metrics")
    assert resp.status == 200
    header = resp.headers["Content-Type"]
    assert header == CONTENT_TYPE_LATEST
    media_type, params = strict_media_type(header)
    assert media_type == "text/plain"
    assert params["charset"] == "utf-8"
    assert params["version"] == strict_media_type(CONTENT_TYPE_LATEST)[1]["version"]


async def test_promtool_accepts_the_exposition(client: TestClient[Any, Any]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: Debian package `prometheus` (scripts/test installs it)")
    await client.get("/health/live")  # at least one labelled series
    body = await (await client.get("/metrics")).read()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


async def test_the_standard_process_metrics_are_exposed(client: TestClient[Any, Any]) -> None:
    """The app's own registry carries the collectors the default one would have had."""
    text = await (await client.get("/metrics")).text()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["process_resident_memory_bytes"] > 10 * 1024 * 1024
    assert values["process_cpu_seconds_total"] > 0
    assert values["process_open_fds"] >= 3
    assert values["process_start_time_seconds"] > 1.7e9
    assert any(name.startswith("python_info{") for name in values)
    assert any(name.startswith("python_gc_objects_collected_total{") for name in values)
    # Declared before anything is sent, so dashboards and alerts find the names.
    for name in ("frameflow_emails", "frameflow_webhook_deliveries"):
        assert f"# TYPE {name}_total counter" in text
