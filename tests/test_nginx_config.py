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


def test_media_authorizations_are_reused_only_as_frameflow_says() -> None:
    text = NGINX_CONF.read_text()
    found = directives(text)
    for needed in (
        "keys_zone=frameflow_authorizations:10m max_size=64m inactive=60s",
        "auth_request /_frameflow_authorize;",
        "auth_request_set $frameflow_media $upstream_http_x_accel_redirect;",
        "proxy_method HEAD;",
        "proxy_buffering on;",
        "proxy_cache frameflow_authorizations;",
        # The whole URI (signature, expiry) and the credentials; never the Range.
        "proxy_cache_key $request_uri|$http_authorization|$http_x_api_key;",
        # No entry without X-Accel-Expires: no proxy_cache_valid, no Cache-Control.
        "proxy_ignore_headers X-Accel-Redirect Cache-Control Expires;",
        "proxy_pass http://frameflow_api$request_uri;",
    ):
        assert needed in text or needed in found, needed
    assert not any(d.startswith("proxy_cache_valid") for d in found)
    assert not any("proxy_cache_use_stale" in d or "proxy_cache_lock" in d for d in found)
    assert "error_page 401 403 404 418 500 = @frameflow;" in found
    assert "try_files $frameflow_file @frameflow;" in found


def test_the_templated_copy_has_this_clusters_ports_only() -> None:
    site = render_site(NGINX_CONF.read_text(), listen_port=18080, upstreams=[18081, 18082])
    found = directives(site)
    assert "listen 127.0.0.1:18080;" in found
    servers = [d for d in found if d.startswith("server 127.0.0.1:")]
    assert [s.split()[1] for s in servers] == ["127.0.0.1:18081", "127.0.0.1:18082"]
    site = render_site(
        NGINX_CONF.read_text(),
        listen_port=18080,
        upstreams=[18081],
        media_root=Path("/srv/objects"),
        cache_dir=Path("/tmp/authorizations"),
    )
    assert "/data/objects" not in site and "alias /srv/objects/;" in site
    assert "root /srv/objects;" in site
    assert "proxy_cache_path /tmp/authorizations " in site


def test_nginx_accepts_it(tmp_path: Path) -> None:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (scripts/test installs Debian's nginx)")
    nginx = Nginx(tmp_path / "nginx", 18080, [18081, 18082])
    result = subprocess.run(nginx._argv("-t"), capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode()
