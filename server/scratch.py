"""Removing stale scratch files — the one home of that rule.

An entry (file or directory) is stale when nothing inside it has been
touched since the cutoff: a live job keeps writing into its directory and a
live writer into its temp file, so neither ever looks stale. Blocking: run
these in a thread.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from server import data_dirs


def newest_mtime(path: Path) -> float:
    """The newest mtime of `path` and everything under it (inf if it vanishes meanwhile)."""
    try:
        newest = path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    except FileNotFoundError:
        return float("inf")  # changing under us: not stale
    return newest


def stale_entries(roots: list[Path], cutoff: float) -> list[Path]:
    """Entries of `roots` untouched since `cutoff` (missing roots are skipped)."""
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += [entry for entry in root.iterdir() if newest_mtime(entry) < cutoff]
    return found


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_stale(roots: list[Path], cutoff: float) -> int:
    """Remove the stale entries of `roots`; returns how many."""
    stale = stale_entries(roots, cutoff)
    remove(stale)
    return len(stale)


def stale_in_data_dir(data_dir: Path, cutoff: float) -> list[Path]:
    """Stale scratch anywhere under the data dir: attempts' work dirs, S3 copies,
    and loose files left in tmp/ (its subdirectories themselves are kept)."""
    found = stale_entries(data_dirs.scratch_roots(data_dir), cutoff)
    tmp = data_dirs.tmp_dir(data_dir)
    if tmp.is_dir():
        found += [
            entry
            for entry in tmp.iterdir()
            if (entry.is_symlink() or not entry.is_dir()) and newest_mtime(entry) < cutoff
        ]
    return found
