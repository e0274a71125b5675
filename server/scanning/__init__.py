"""Malware scanning of uploads with ClamAV's daemon (clamd), before they become videos.

`clamd.ClamdClient` speaks clamd's INSTREAM protocol over its socket (unix or
TCP), streaming the file in chunks; `service.ScanService` decides what a
verdict means for an upload (422 infected, 503 when clamd is down unless the
operator chose to fail open). Off unless `FRAMEFLOW_MALWARE_SCAN` is set.
"""
