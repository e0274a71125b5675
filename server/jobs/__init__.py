"""The durable FFmpeg job pipeline: queue, runner, operations, API."""
