"""deploy/nginx/frameflow.conf: nginx accepts it (`nginx -t` on the templated copy
the cluster test runs), and it keeps what uploads, WebSockets and per-IP limits
need. tests/test_cluster.py runs it for real."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.cluster import NGINX_CONF, Nginx, nginx_binary, render_site


def directives(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [re.sub(r"\s+", " ", line) for line in lines if line]


def test_the_site_keeps_uploads_streaming_websockets_and_client_addresses() -> None:
    found = directives(NGINX_CONF.read_text())
    for needed in (
        "client_max_body_size 10g;",
        "proxy_request_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "location = /api/v1/ws {",
    ):
        assert needed in found, needed
    # A location with its own proxy_set_header would drop the server-level ones.
    blocks = re.findall(r"location [^{]+\{([^}]*)\}", NGINX_CONF.read_text())
    assert blocks and not any("proxy_set_header" in block for block in blocks)


def test_the_templated_copy_has_this_clusters_ports_only() -> None:
    site = render_site(NGINX_CONF.read_text(), listen_port=18080, upstreams=[18081, 18082])
    found = directives(site)
    assert "listen 127.0.0.1:18080;" in found
    servers = [d for d in found if d.startswith("server 127.0.0.1:")]
    assert [s.split()[1] for s in servers] == ["127.0.0.1:18081", "127.0.0.1:18082"]


def test_nginx_accepts_it(tmp_path: Path) -> None:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (scripts/test installs Debian's nginx)")
    nginx = Nginx(tmp_path / "nginx", 18080, [18081, 18082])
    result = subprocess.run(nginx._argv("-t"), capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode()
