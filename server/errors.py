"""Errors that carry their HTTP status, code and data.

Handlers and services raise these; one middleware (`server.middlewares`)
renders every one of them, and every unexpected exception, as
``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class HTTPError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error"
    # The connection cannot carry another request after this answer (e.g. an
    # unread body the client is still sending, or has stopped sending).
    close_connection: ClassVar[bool] = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **details: Any,
    ) -> None:
        self.message = message or self.default_message
        self.error_code = code or self.code
        self.headers = dict(headers or {})
        self.details = details
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.error_code, "message": self.message}
        error.update(self.details)
        return {"error": error}


class BadRequest(HTTPError):
    status = 400
    code = "bad_request"
    default_message = "The request is malformed"


class Unauthorized(HTTPError):
    status = 401
    code = "unauthorized"
    default_message = "Authentication required"

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="frameflow"'})
        super().__init__(message, **kw)


class Forbidden(HTTPError):
    status = 403
    code = "forbidden"
    default_message = "Not allowed"


class NotFound(HTTPError):
    status = 404
    code = "not_found"
    default_message = "Not found"


class MethodNotAllowed(HTTPError):
    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"

    def __init__(self, allowed: str, message: str | None = None, **kw: Any) -> None:
        super().__init__(message, headers={"Allow": allowed}, **kw)


class RequestTimeout(HTTPError):
    status = 408
    code = "request_timeout"
    default_message = "The request took too long to arrive"
    close_connection = True


class Conflict(HTTPError):
    status = 409
    code = "conflict"
    default_message = "Conflict"


class Gone(HTTPError):
    status = 410
    code = "gone"
    default_message = "Gone"


class LengthRequired(HTTPError):
    status = 411
    code = "length_required"
    default_message = "A request body is required"


class PreconditionFailed(HTTPError):
    status = 412
    code = "precondition_failed"
    default_message = "A precondition of the request is not met"


class PaymentRequired(HTTPError):
    status = 402
    code = "insufficient_credits"
    default_message = "Not enough credits"


class PayloadTooLarge(HTTPError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large"


class UnsupportedMediaType(HTTPError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Unsupported media type"


class RangeNotSatisfiable(HTTPError):
    status = 416
    code = "range_not_satisfiable"
    default_message = "The requested range is not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(headers={"Content-Range": f"bytes */{size}"})
        self.size = size


class Unprocessable(HTTPError):
    status = 422
    code = "unprocessable"
    default_message = "The content cannot be processed"


class Locked(HTTPError):
    status = 423
    code = "locked"
    default_message = "The resource is locked by another request"


class TooManyRequests(HTTPError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class ChecksumMismatch(HTTPError):
    """tus 1.0's checksum extension: the body does not match its `Upload-Checksum`."""

    status = 460
    code = "checksum_mismatch"
    default_message = "The body does not match its Upload-Checksum"


class ServiceUnavailable(HTTPError):
    status = 503
    code = "unavailable"
    default_message = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached (restarting, failing over): fail fast, retry soon."""

    code = "database_unavailable"
    default_message = "The database is unavailable; try again shortly"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "2"})


class ObjectStoreUnavailable(ServiceUnavailable):
    """The object store (S3) cannot be reached: the request fails now, a retry may not."""

    code = "storage_unavailable"
    default_message = "Storage is unavailable; try again shortly"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


class ClientClosedRequest(HTTPError):
    """The client went away mid-request; nothing is sent back, but logs say so."""

    status = 499
    code = "client_closed_request"
    default_message = "The client closed the connection"
