"""Operational endpoints: health checks and Prometheus metrics."""
