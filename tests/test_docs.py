"""The README documents every endpoint the app serves (Datasette's habit)."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from server.app import create_app

README = Path(__file__).resolve().parents[1] / "README.md"
UNDOCUMENTED = {"/", "/static"}  # the page itself, not API


def test_every_route_is_in_the_readme(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    readme = README.read_text("utf-8")
    missing = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method in {"HEAD", "OPTIONS"} or path in UNDOCUMENTED:
            continue
        # Tables write either "GET /path" or "GET`/`HEAD /path".
        spellings = (f"{route.method} {path}", f"{route.method}`/`HEAD {path}")
        if not any(s in readme for s in spellings):
            missing.append(f"{route.method} {path}")
    assert missing == [], f"endpoints missing from README.md: {missing}"
