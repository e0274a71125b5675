"""Who may call what: the scopes, what each role allows, and the route table.

The one permission table of the API. `auth_middleware` checks it once per
request: a caller (a JWT or an API key, `AuthUser.scopes`) without the scope a
route needs gets 403 `insufficient_scope` naming it. A JWT holds every scope
its role allows; an API key holds the scopes it was created with, narrowed to
what its owner's role allows now.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

VIDEOS_READ: Final = "videos:read"
VIDEOS_WRITE: Final = "videos:write"  # upload and delete
JOBS_WRITE: Final = "jobs:write"  # queue and cancel
WEBHOOKS: Final = "webhooks"
ADMIN: Final = "admin"

SCOPES: Final = (VIDEOS_READ, VIDEOS_WRITE, JOBS_WRITE, WEBHOOKS, ADMIN)

# Every role an account can have (the users table's CHECK lists the same).
Role = Literal["admin", "user", "viewer"]

ROLE_SCOPES: Final[dict[str, frozenset[str]]] = {
    "admin": frozenset(SCOPES),
    "user": frozenset(SCOPES) - {ADMIN},
    # Read-only: list, play, download. No upload, processing, delete, shares or hooks.
    "viewer": frozenset({VIDEOS_READ}),
}
ROLES: Final[tuple[str, ...]] = get_args(Role)
assert set(ROLES) == set(ROLE_SCOPES), "every role has its scopes"
# Scopes that only read: a route needing any other scope writes something.
READ_SCOPES: Final = frozenset({VIDEOS_READ})

# Only a password session (a JWT) may manage keys and the account: a key that
# could mint keys could widen its own scopes.
SESSION: Final = "session"
# Authenticated by something other than the caller's credentials (a body, a
# signed URL, the WebSocket's auth message), or public.
PUBLIC: Final = "public"
# Any authenticated caller, whatever its scopes.
ANY: Final = "any"

# (method, route pattern) → what the route needs. GET covers HEAD.
ROUTE_SCOPES: Final[dict[tuple[str, str], str]] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("POST", "/api/v1/auth/register"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): PUBLIC,
    # Account recovery: the mailed token (or the email) is the credential.
    ("POST", "/api/v1/auth/verify-email"): PUBLIC,
    ("POST", "/api/v1/auth/password-reset"): PUBLIC,
    ("POST", "/api/v1/auth/password-reset/confirm"): PUBLIC,
    ("GET", "/api/v1/me"): ANY,
    ("PATCH", "/api/v1/me"): SESSION,
    ("POST", "/api/v1/me/password"): SESSION,
    ("POST", "/api/v1/me/verify-email"): SESSION,
    ("POST", "/api/v1/api-keys"): SESSION,
    ("GET", "/api/v1/api-keys"): SESSION,
    ("DELETE", "/api/v1/api-keys/{id}"): SESSION,
    ("GET", "/api/v1/me/security-events"): ANY,
    ("GET", "/api/v1/admin/users"): ADMIN,
    ("GET", "/api/v1/admin/users/{id}"): ADMIN,
    ("PATCH", "/api/v1/admin/users/{id}"): ADMIN,
    ("POST", "/api/v1/admin/users/{id}/disable"): ADMIN,
    ("POST", "/api/v1/admin/users/{id}/enable"): ADMIN,
    ("DELETE", "/api/v1/admin/videos/{id}"): ADMIN,
    ("GET", "/api/v1/admin/jobs"): ADMIN,
    ("GET", "/api/v1/admin/summary"): ADMIN,
    ("GET", "/api/v1/admin/audit"): ADMIN,
    ("GET", "/api/v1/admin/audit/export"): ADMIN,
    ("PUT", "/api/v1/uploads/{filename}"): VIDEOS_WRITE,
    ("POST", "/api/v1/uploads"): VIDEOS_WRITE,
    # Resumable uploads (tus); HEAD /api/v1/tus/{id} is read as its GET.
    ("OPTIONS", "/api/v1/tus/"): PUBLIC,
    ("POST", "/api/v1/tus/"): VIDEOS_WRITE,
    ("OPTIONS", "/api/v1/tus/{id}"): PUBLIC,
    ("GET", "/api/v1/tus/{id}"): VIDEOS_WRITE,
    ("PATCH", "/api/v1/tus/{id}"): VIDEOS_WRITE,
    ("DELETE", "/api/v1/tus/{id}"): VIDEOS_WRITE,
    # Direct uploads: made by a creator; the one-time URL is its own credential.
    ("POST", "/api/v1/direct-uploads"): VIDEOS_WRITE,
    ("GET", "/api/v1/direct-uploads/{id}"): VIDEOS_READ,
    ("POST", "/api/v1/direct-uploads/{id}/cancel"): VIDEOS_WRITE,
    ("PUT", "/api/v1/direct-uploads/u/{token}"): PUBLIC,
    ("OPTIONS", "/api/v1/direct-uploads/u/{token}"): PUBLIC,
    ("OPTIONS", "/api/v1/direct-uploads/u/{token}/tus/"): PUBLIC,
    ("POST", "/api/v1/direct-uploads/u/{token}/tus/"): PUBLIC,
    ("OPTIONS", "/api/v1/direct-uploads/u/{token}/tus/{id}"): PUBLIC,
    ("GET", "/api/v1/direct-uploads/u/{token}/tus/{id}"): PUBLIC,
    ("PATCH", "/api/v1/direct-uploads/u/{token}/tus/{id}"): PUBLIC,
    # A PUT without a file name: refused with how to name it (405), never stored.
    ("PUT", "/api/v1/uploads"): VIDEOS_WRITE,
    ("PUT", "/api/v1/uploads/"): VIDEOS_WRITE,
    ("GET", "/api/v1/videos"): VIDEOS_READ,
    ("GET", "/api/v1/videos/{id}"): VIDEOS_READ,
    ("PATCH", "/api/v1/videos/{id}"): VIDEOS_WRITE,
    ("GET", "/api/v1/videos/suggest"): VIDEOS_READ,
    ("POST", "/api/v1/videos/{id}/shares"): VIDEOS_WRITE,
    ("GET", "/api/v1/videos/{id}/shares"): VIDEOS_READ,
    ("DELETE", "/api/v1/videos/{id}/shares/{share_id}"): VIDEOS_WRITE,
    # Share links: the token is the credential; no login.
    ("GET", "/s/{token}"): PUBLIC,
    ("GET", "/s/{token}/embed"): PUBLIC,
    ("GET", "/s/{token}/info"): PUBLIC,
    ("POST", "/s/{token}/unlock"): PUBLIC,
    ("POST", "/s/{token}/renew"): PUBLIC,
    ("GET", "/s/{token}/m/{grant}/video"): PUBLIC,
    ("OPTIONS", "/s/{token}/m/{grant}/video"): PUBLIC,
    ("GET", "/s/{token}/m/{grant}/thumbnail"): PUBLIC,
    ("OPTIONS", "/s/{token}/m/{grant}/thumbnail"): PUBLIC,
    ("GET", "/s/{token}/m/{grant}/hls/{name}"): PUBLIC,
    ("OPTIONS", "/s/{token}/m/{grant}/hls/{name}"): PUBLIC,
    ("DELETE", "/api/v1/videos/{id}"): VIDEOS_WRITE,
    ("GET", "/api/v1/videos/{id}/content"): VIDEOS_READ,
    ("GET", "/api/v1/videos/{id}/content-url"): VIDEOS_READ,
    ("GET", "/api/v1/images"): VIDEOS_READ,
    ("GET", "/api/v1/images/{id}"): VIDEOS_READ,
    # Bearer, or the signed query of the image's thumbnail URL (checked by the handler).
    ("GET", "/api/v1/images/{id}/thumbnail"): VIDEOS_READ,
    ("POST", "/api/v1/videos/{id}/jobs"): JOBS_WRITE,
    ("GET", "/api/v1/jobs"): VIDEOS_READ,
    ("GET", "/api/v1/jobs/{id}"): VIDEOS_READ,
    ("POST", "/api/v1/jobs/{id}/cancel"): JOBS_WRITE,
    ("GET", "/api/v1/jobs/{id}/events"): VIDEOS_READ,
    ("GET", "/api/v1/jobs/{id}/outputs/{name}"): VIDEOS_READ,
    ("POST", "/api/v1/jobs/batch"): JOBS_WRITE,
    ("POST", "/api/v1/videos/{id}/captions"): VIDEOS_WRITE,
    ("GET", "/api/v1/videos/{id}/captions"): VIDEOS_READ,
    ("GET", "/api/v1/videos/{id}/captions/{language}"): VIDEOS_READ,
    ("DELETE", "/api/v1/videos/{id}/captions/{language}"): VIDEOS_WRITE,
    ("OPTIONS", "/api/v1/videos/{id}/captions/{language}"): PUBLIC,
    ("GET", "/s/{token}/m/{grant}/captions/{language}"): PUBLIC,
    ("OPTIONS", "/s/{token}/m/{grant}/captions/{language}"): PUBLIC,
    ("GET", "/api/v1/batches/{id}"): VIDEOS_READ,
    ("POST", "/api/v1/batches/{id}/cancel"): JOBS_WRITE,
    ("POST", "/api/v1/presets"): JOBS_WRITE,
    ("GET", "/api/v1/presets"): VIDEOS_READ,
    ("GET", "/api/v1/presets/{name}"): VIDEOS_READ,
    ("PUT", "/api/v1/presets/{name}"): JOBS_WRITE,
    ("DELETE", "/api/v1/presets/{name}"): JOBS_WRITE,
    ("GET", "/api/v1/jobs/{id}/t/{token}/{name}"): PUBLIC,
    # CORS preflights of signed media: browsers send them without credentials.
    ("OPTIONS", "/api/v1/jobs/{id}/t/{token}/{name}"): PUBLIC,
    ("OPTIONS", "/api/v1/videos/{id}/content"): PUBLIC,
    ("GET", "/api/v1/operations"): ANY,
    # The socket authenticates with its first message and needs videos:read there.
    ("GET", "/api/v1/ws"): PUBLIC,
    ("POST", "/api/v1/webhooks"): WEBHOOKS,
    ("GET", "/api/v1/webhooks"): WEBHOOKS,
    ("DELETE", "/api/v1/webhooks/{id}"): WEBHOOKS,
    ("GET", "/api/v1/webhooks/{id}/deliveries"): WEBHOOKS,
    # Credits: reading is videos:read; spending happens through generations (jobs:write).
    ("GET", "/api/v1/credits"): VIDEOS_READ,
    ("GET", "/api/v1/credits/transactions"): VIDEOS_READ,
    ("POST", "/api/v1/admin/users/{id}/credits"): ADMIN,
    # Generating queues work and spends credits: jobs:write, like queuing a job.
    ("POST", "/api/v1/generations"): JOBS_WRITE,
    ("GET", "/api/v1/generations"): VIDEOS_READ,
    ("GET", "/api/v1/generations/{id}"): VIDEOS_READ,
    ("POST", "/api/v1/generations/{id}/cancel"): JOBS_WRITE,
    ("GET", "/api/v1/providers"): ANY,
}

# Scoped routes that also take a signed URL instead of credentials: the media a
# `<video>`, `<img>` or `<track>` loads, which sends no headers. Without credentials
# the middleware lets these through to their handler, which checks the signature
# (or answers 401 when there is none); every other scoped route is a 401 there.
SIGNED_URL_ROUTES: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        ("GET", "/api/v1/videos/{id}/content"),
        ("GET", "/api/v1/images/{id}/thumbnail"),
        ("GET", "/api/v1/videos/{id}/captions/{language}"),
    }
)
assert ROUTE_SCOPES.keys() >= SIGNED_URL_ROUTES, "signed-URL routes are in the table"

# What the live socket needs: it streams the caller's job and video events.
WEBSOCKET_SCOPE: Final = VIDEOS_READ


# What an account with an unverified email may be refused (the setting
# `unverified_email_denies` picks among these): `api_keys` is creating a key,
# the others are scopes, refused wherever a route needs them.
API_KEYS_GATE: Final = "api_keys"
_GATED_ROUTES: Final[dict[tuple[str, str], str]] = {
    ("POST", "/api/v1/api-keys"): API_KEYS_GATE,
}


def unverified_refusal(method: str, pattern: str, denied: frozenset[str]) -> str | None:
    """What refuses this route to an account whose email is not verified (the gate's
    name), or None when it may go ahead."""
    if method == "HEAD":
        method = "GET"
    gate = _GATED_ROUTES.get((method, pattern))
    if gate is not None and gate in denied:
        return gate
    needed = ROUTE_SCOPES.get((method, pattern))
    if needed is not None and needed in denied:
        return needed
    return None


def role_scopes(role: str) -> frozenset[str]:
    return ROLE_SCOPES.get(role, frozenset())


def roles_allowed(scope: str) -> tuple[str, ...]:
    """The roles whose accounts may hold `scope` (for the OpenAPI document)."""
    return tuple(role for role, scopes in ROLE_SCOPES.items() if scope in scopes)


def needs_credentials(method: str, pattern: str) -> bool:
    """Whether a request without credentials is refused (401) before its handler:
    every route needing a caller, except the signed-URL ones and public ones."""
    if method == "HEAD":
        method = "GET"
    needed = ROUTE_SCOPES.get((method, pattern))
    return needed not in (None, PUBLIC) and (method, pattern) not in SIGNED_URL_ROUTES


def required_scope(method: str, pattern: str) -> str | None:
    """What a route needs; None for a route missing from the table (tests forbid that)."""
    if method == "HEAD":
        method = "GET"
    return ROUTE_SCOPES.get((method, pattern))
