"""Schemas of the answers several endpoints share, each named for the serializer it describes."""

from __future__ import annotations

from server.openapi.spec import (
    ANY_OBJECT,
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    TIME,
    UUID,
    Answer,
    Param,
    Schema,
    nullable,
    obj,
    ref,
)

ERROR: Schema = obj(
    ["error"],
    error=obj(
        ["code", "message"],
        code={"type": "string", "description": "Stable, machine-readable"},
        message={"type": "string", "description": "For people"},
    )
    | {
        "additionalProperties": True,
        "description": "More fields name what was wrong (field, scope)",
    },
)

# server.videos.serializers.video_json
VIDEO = obj(
    ["id", "filename", "size", "content_type", "kind", "status", "created_at", "content_path"],
    id=UUID,
    filename=STRING,
    title=STRING,
    description=STRING,
    tags={"type": "array", "items": STRING},
    size=INTEGER,
    sha256=nullable(STRING),
    content_type=STRING,
    kind=STRING,
    status=STRING,
    created_at=TIME,
    expires_at=nullable(TIME),
    metadata=nullable(ANY_OBJECT),
    content_path=STRING,
    thumbnail=nullable(STRING)
    | {"description": "In lists only: a signed URL of the newest thumbnail job's picture"},
)
# server.jobs.serializers.job_json
JOB = obj(
    ["id", "video_id", "operation", "status", "progress", "attempts", "created_at"],
    id=UUID,
    video_id=nullable(UUID),  # null for a generation's `generate` job (no source video)
    operation=STRING,
    params=ANY_OBJECT,
    status={"type": "string", "enum": ["queued", "running", "succeeded", "failed", "canceled"]},
    progress=NUMBER,
    attempts=INTEGER,
    error=nullable(STRING),
    cancel_requested=BOOLEAN,
    created_at=TIME,
    started_at=nullable(TIME),
    finished_at=nullable(TIME),
)
# job_detail_json: the job with its outputs (signed links)
JOB_DETAIL: Schema = {
    "allOf": [
        ref("Job"),
        obj(
            ["outputs", "output_count"],
            outputs={
                "type": "array",
                "items": obj(
                    ["name", "size", "content_type", "url"],
                    name=STRING,
                    size=INTEGER,
                    content_type=STRING,
                    url=STRING,
                ),
            },
            output_count=INTEGER,
        ),
    ]
}
UPLOADED: Schema = {
    "allOf": [ref("Video"), obj(["jobs"], jobs={"type": "array", "items": ref("Job")})]
}
# server.auth.serializers.user_json ("self" and "admin" views)
USER = obj(
    ["id", "email"],
    id=UUID,
    email=STRING,
    role=STRING,
    quota_bytes=INTEGER,
    used_bytes=INTEGER,
    email_notifications=BOOLEAN,
    email_verified=BOOLEAN,
    created_at=TIME,
    disabled=BOOLEAN,
    disabled_at=nullable(TIME),
)
# server.admin.serializers.account_json: an account with its usage
ACCOUNT: Schema = {"allOf": [ref("User"), obj(["video_count"], video_count=INTEGER)]}
# server.admin.serializers.admin_job_json
ADMIN_JOB: Schema = {"allOf": [ref("Job"), obj(["user_id"], user_id=UUID)]}
# server.admin.serializers.summary_json
SUMMARY = obj(
    ["users", "videos", "bytes_stored", "jobs_by_status", "workers"],
    users=obj(
        ["total", "by_role", "disabled"],
        total=INTEGER,
        by_role={"type": "object", "additionalProperties": INTEGER},
        disabled=INTEGER,
    ),
    videos=INTEGER,
    bytes_stored=INTEGER,
    video_bytes=INTEGER,
    output_bytes=INTEGER,
    jobs_by_status={"type": "object", "additionalProperties": INTEGER},
    workers={
        "type": "array",
        "items": obj(
            ["worker_id", "seen_at"],
            worker_id=STRING,
            concurrency=INTEGER,
            running=INTEGER,
            started_at=TIME,
            seen_at=TIME,
        ),
    },
)
# server.audit.serializers.audit_entry_json
AUDIT_ENTRY = obj(
    ["id", "created_at", "actor", "action", "outcome", "detail"],
    id=UUID,
    created_at=TIME,
    actor=obj(
        ["type"],
        type={"enum": ["user", "api_key", "system", "anonymous"]},
        user_id=nullable(UUID),
        api_key_id=nullable(UUID),
    ),
    action=STRING,
    target=nullable(obj(["type"], type=STRING, id=nullable(STRING))),
    outcome={"enum": ["success", "failure", "denied"]},
    client_ip=nullable(STRING),
    user_agent=nullable(STRING),
    request_id=nullable(STRING),
    detail=ANY_OBJECT,
)
TOKEN_PAIR = obj(
    ["access_token", "refresh_token", "token_type", "expires_in"],
    access_token=STRING,
    refresh_token=STRING,
    token_type={"const": "bearer"},
    expires_in=INTEGER,
)
# server.apikeys.serializers.api_key_json
API_KEY = obj(
    ["id", "name", "prefix", "scopes", "expires_at", "created_at", "last_used_at"],
    id=UUID,
    name=STRING,
    prefix=STRING,
    scopes={"type": "array", "items": STRING},
    expires_at=nullable(TIME),
    created_at=TIME,
    last_used_at=nullable(TIME),
)
# server.webhooks.serializers
WEBHOOK = obj(
    ["id", "url", "events", "created_at"],
    id=UUID,
    url=STRING,
    events={"type": "array", "items": STRING},
    created_at=TIME,
    secret=STRING,
)
DELIVERY = obj(
    ["id", "event", "status", "attempts"],
    id=UUID,
    event=STRING,
    status=STRING,
    attempts=INTEGER,
    response_status=nullable(INTEGER),
    error=nullable(STRING),
    created_at=nullable(TIME),
    last_attempt_at=nullable(TIME),
    next_attempt_at=nullable(TIME),
)

SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "Video": VIDEO,
    "Job": JOB,
    "JobDetail": JOB_DETAIL,
    "Uploaded": UPLOADED,
    "User": USER,
    "Account": ACCOUNT,
    "AdminJob": ADMIN_JOB,
    "Summary": SUMMARY,
    "AuditEntry": AUDIT_ENTRY,
    "TokenPair": TOKEN_PAIR,
    "ApiKey": API_KEY,
    "Webhook": WEBHOOK,
    "Delivery": DELIVERY,
}

# What `serving.serve.serve_stored_file` answers, for every endpoint that serves bytes.
SERVE_PARAMS = [
    Param("download", "query", {"enum": ["1", "true"]}, "Send as an attachment"),
    Param("Range", "header", {"type": "string"}, "`bytes=start-end`"),
]
_BYTES: Schema = {"type": "string", "format": "binary"}
SERVED = {
    200: Answer("The bytes", _BYTES, "application/octet-stream"),
    206: Answer("The requested range", _BYTES, "application/octet-stream"),
    304: Answer("Not modified (If-None-Match / If-Modified-Since)"),
}
