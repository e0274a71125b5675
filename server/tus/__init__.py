"""Resumable uploads: a tus 1.0 server at /api/v1/tus/ (see service.py)."""
