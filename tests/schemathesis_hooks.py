"""Hooks for the schemathesis run in test_openapi.py (loaded via SCHEMATHESIS_HOOKS).

tus bodies are `application/offset+octet-stream`: raw bytes, serialized like
`application/octet-stream`, for which schemathesis has a serializer built in.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
