"""deploy/grafana/frameflow.json: an importable dashboard (JSON with the fields
Grafana's import needs), its queries valid PromQL (promtool checks them as
recording rules) over metric names that a running server's /metrics exposes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from tests.test_operator_metrics import _promtool

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "frameflow.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]


def test_the_dashboard_is_importable() -> None:
    data = dashboard()
    assert data["title"] and data["uid"] and isinstance(data["schemaVersion"], int)
    assert "id" not in data  # an import assigns its own
    [variable] = data["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))


def test_the_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = _promtool()
    # Grafana fills in $__rate_interval; promtool needs a real range.
    rules = [
        {"record": f"frameflow:dashboard_query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


async def test_the_queries_use_metrics_that_metrics_exposes(client: TestClient[Any, Any]) -> None:
    text = await (await client.get("/metrics")).text()
    exposed = set(re.findall(r"^# TYPE (\S+) \S+$", text, re.MULTILINE))
    used = {
        name
        for expr in queries()
        for name in re.findall(r"\b(?:frameflow|process|python)_[a-z_]+", expr)
    }
    assert used
    for name in used:
        base = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
        assert name in exposed or base in exposed, name
    # Every metric of the operator's set has a panel.
    for name in (
        "frameflow_jobs",
        "frameflow_job_duration_seconds",
        "frameflow_ffmpeg_processes",
        "frameflow_emails",
        "frameflow_webhook_deliveries",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
    ):
        assert any(name in expr for expr in queries()), name
