"""`origin_of(request)`: the client address, user agent and request id an audit row keeps.

HTTP layer only (it reads the app's settings for trusted proxies); services
receive the `Origin` it builds.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.audit.model import Origin
from server.limits.client_ip import client_ip

MAX_USER_AGENT_CHARS = 512


def origin_of(request: web.Request) -> Origin:
    agent = request.headers.get("User-Agent")
    return Origin(
        client_ip=client_ip(request),
        user_agent=None if agent is None else agent[:MAX_USER_AGENT_CHARS],
        request_id=request.get(appkeys.REQUEST_ID),
    )
