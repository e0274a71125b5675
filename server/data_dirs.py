"""The layout of the data dir — the one place it is spelled out.

Storage keys (inside the object store) are made in `object_keys.py`; this
module names the directories on local disk:

    <data dir>/
      objects/          local storage backend (objects/.tmp: writers' temp files)
      work/<job>-<n>/   scratch of one job attempt, removed when it ends
      tmp/s3/           S3 objects copied to disk for ffmpeg (`Storage.local_path`)
      tmp/images/<n>/   an image upload's stripped copy and thumbnail, until stored
      postgres/         the embedded PostgreSQL, when no DATABASE_URL is set
      jwt_secret        the signing secret, when none is configured
"""

from __future__ import annotations

import uuid
from pathlib import Path

OBJECTS = "objects"
WORK = "work"
TMP = "tmp"
POSTGRES = "postgres"
SECRET_FILE = "jwt_secret"  # noqa: S105 - a file name, not a secret


def objects_dir(data_dir: Path) -> Path:
    return data_dir / OBJECTS


def work_dir(data_dir: Path) -> Path:
    return data_dir / WORK


def attempt_dir(data_dir: Path, job_id: uuid.UUID, attempt: int) -> Path:
    return work_dir(data_dir) / f"{job_id}-{attempt}"


def tmp_dir(data_dir: Path) -> Path:
    return data_dir / TMP


def s3_copies_dir(data_dir: Path) -> Path:
    return tmp_dir(data_dir) / "s3"


def image_scratch_dir(data_dir: Path) -> Path:
    return tmp_dir(data_dir) / "images"


def postgres_dir(data_dir: Path) -> Path:
    return data_dir / POSTGRES


def secret_file(data_dir: Path) -> Path:
    return data_dir / SECRET_FILE


def scratch_roots(data_dir: Path) -> list[Path]:
    """Directories whose entries are scratch: each entry is one attempt's or one
    copy's, and may be removed once nothing has touched it for long enough."""
    roots = [work_dir(data_dir)]
    tmp = tmp_dir(data_dir)
    if tmp.is_dir():
        roots += [entry for entry in tmp.iterdir() if entry.is_dir() and not entry.is_symlink()]
    return roots
