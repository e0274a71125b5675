"""The one secret that signs tokens and URLs: configured, or generated once and kept.

Generated secrets live in ``<data dir>/jwt_secret`` (mode 0600) so that restarts
and every instance sharing the data dir sign with the same key.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from config.settings import Settings
from server import data_dirs
from server.logs import get_logger

log = get_logger("frameflow.auth")

# Same floor as the jwt_secret setting: HS256 wants at least 32 bytes of key.
MIN_SECRET_LENGTH = 32


def load_or_create_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        return settings.jwt_secret
    path = data_dirs.secret_file(settings.data_dir)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if _create_secret_file(path, secrets.token_urlsafe(48)):
        log.info("jwt_secret_generated", path=str(path))
    # Read back in both cases: if another instance won the race, its secret is the one.
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("jwt_secret_file_too_open", path=str(path), mode=oct(mode & 0o777))
    value = path.read_text("utf-8").strip()
    if len(value) < MIN_SECRET_LENGTH:
        raise RuntimeError(
            f"{path} holds a secret shorter than {MIN_SECRET_LENGTH} characters; "
            "delete it to generate a new one (this signs everyone out)"
        )
    return value


def _create_secret_file(path: Path, value: str) -> bool:
    """Publishes `value` at `path` unless it already exists; True if ours won.

    The secret is written and fsynced under a private temporary name first
    (O_CREAT|O_EXCL, 0600), then hard-linked into place: link() fails if the
    name exists, so two instances starting together agree on one secret, and a
    reader never sees a half-written file.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)
