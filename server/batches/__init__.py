"""Batches: many jobs queued by one request, all or none, followed and canceled as one."""
