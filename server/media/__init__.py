"""Media handling: what an upload is, which ffmpeg to run, running it safely, probing.

- :mod:`sniff` — type from magic numbers, and the demuxer to pin (pure);
- :mod:`binary` — locate the ffmpeg binary; :mod:`version` — refuse one that is too old;
- :mod:`process` — run ffmpeg with timeouts, capped stderr and group kill;
- :mod:`sandbox` — confine it (no network, only its own files);
- :mod:`pixels` — the decoders' pixel limit;
- :mod:`probe` — metadata from one ffmpeg run (the parser is pure);
  :mod:`prober` — the server's probes, bounded in number.
"""

from server.media.binary import FfmpegNotFoundError, resolve_ffmpeg
from server.media.probe import MediaInfo, ProbeError, parse_probe_output, probe
from server.media.process import FfmpegError, FfmpegResult, FfmpegTimeout, run_ffmpeg
from server.media.sniff import ALLOWED_DEMUXERS, SNIFF_BYTES, SniffResult, sniff

__all__ = [
    "ALLOWED_DEMUXERS",
    "SNIFF_BYTES",
    "FfmpegError",
    "FfmpegNotFoundError",
    "FfmpegResult",
    "FfmpegTimeout",
    "MediaInfo",
    "ProbeError",
    "SniffResult",
    "parse_probe_output",
    "probe",
    "resolve_ffmpeg",
    "run_ffmpeg",
    "sniff",
]
