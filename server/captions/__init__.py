"""Captions: WebVTT (or SRT, converted) per language for a video — stored, served with
CORS, offered as `<track>` and as an HLS `SUBTITLES` group."""
