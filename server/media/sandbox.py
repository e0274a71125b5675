"""Confine every ffmpeg that touches an upload: no network, only its own files, no privileges.

ffmpeg parses hostile files with a large C code base. Argument hygiene
(pinned demuxer, ``-protocol_whitelist file,pipe``) stops the *documented*
ways to reach the network or other files; a sandbox stops the undocumented
ones, such as a memory-safety bug in a demuxer. Three confinements exist:

- ``bwrap`` (bubblewrap): new user, network, PID, IPC and mount namespaces.
  ffmpeg runs as uid 65534 without capabilities, sees a read-only /usr, an
  empty /tmp, its binary, the files it reads (read-only) and the directory it
  writes — not the data dir, the config, other users' files or the network;
- ``unshare`` (util-linux): a new user and network namespace only, so no
  network; the file system stays visible;
- ``none``: ffmpeg runs as the server does.

`detect_sandbox` picks one at start-up by running ffmpeg inside it, so a
system where namespaces are not allowed (a container under a default
seccomp profile, say) is found at once, not at the first upload.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from server.logs import get_logger
from server.media.process import FfmpegError, run_ffmpeg

log = get_logger("frameflow.media")

MODES = ("auto", "bwrap", "unshare", "none")
# nobody/nogroup: an id that owns nothing, inside the sandbox's user namespace.
SANDBOX_UID = 65534
_CHECK_TIMEOUT_SECONDS = 30.0
# Top-level paths that hold the system's programs and libraries; bound read-only
# (or recreated as the symlinks they are on merged-/usr systems).
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The dynamic loader's cache: without it, Debian's multiarch libraries are not found.
# Nothing else from /etc is needed, and /etc may hold secrets.
_SYSTEM_FILES = ("/etc/ld.so.cache",)


class SandboxError(RuntimeError):
    """The configured sandbox cannot run ffmpeg here; the message says why."""


class Sandbox(Protocol):
    @property
    def name(self) -> str: ...

    def wrap(
        self, argv: Sequence[str], *, read: Iterable[Path] = (), write: Iterable[Path] = ()
    ) -> list[str]:
        """``argv`` (``argv[0]`` is ffmpeg) as a command that runs it confined.

        ``read`` are the files (or directories) it may read, ``write`` the
        directories it may write; relative paths are taken from the current
        directory, as ffmpeg would.
        """
        ...


@dataclass(frozen=True)
class NoSandbox:
    name: str = "none"

    def wrap(
        self, argv: Sequence[str], *, read: Iterable[Path] = (), write: Iterable[Path] = ()
    ) -> list[str]:
        return list(argv)


NO_SANDBOX = NoSandbox()


@dataclass(frozen=True)
class NetworkNamespace:
    """``unshare --user --net``: an empty network namespace (only a loopback that is down)."""

    unshare: str
    name: str = "unshare"

    def wrap(
        self, argv: Sequence[str], *, read: Iterable[Path] = (), write: Iterable[Path] = ()
    ) -> list[str]:
        # --user as well: it lets an unprivileged server create the network
        # namespace, and a root server's ffmpeg loses its capabilities.
        # unshare execs ffmpeg in place: same pid, same process group.
        return [self.unshare, "--user", "--net", "--", *argv]


@dataclass(frozen=True)
class Bubblewrap:
    bwrap: str
    name: str = "bwrap"

    def wrap(
        self, argv: Sequence[str], *, read: Iterable[Path] = (), write: Iterable[Path] = ()
    ) -> list[str]:
        if not argv:
            raise ValueError("argv must at least name the ffmpeg binary")
        cmd = [
            self.bwrap,
            "--unshare-all",  # network, PID, IPC, UTS, cgroup ...
            "--unshare-user",  # ... and user, required (not just tried) for --uid
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            # ffmpeg dies with the server; no --new-session, so that killing the
            # process group (run_ffmpeg's timeout and cancel) reaches ffmpeg too.
            "--die-with-parent",
            *_system_binds(),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",  # noqa: S108 -- an empty tmpfs of the sandbox's own, not the host's /tmp
        ]
        binary = _absolute(argv[0])
        if not _is_under(binary, "/usr"):
            # imageio-ffmpeg's static build lives in site-packages: bind just it.
            cmd += ["--ro-bind", binary, binary]
        # Writable directories first, read-only inputs over them: an input
        # inside the scratch directory stays read-only.
        for path in _unique(write):
            cmd += ["--bind", path, path]
        for path in _unique(read):
            # -try: a missing input is ffmpeg's "No such file", as without a sandbox.
            cmd += ["--ro-bind-try", path, path]
        # ffmpeg resolves relative paths from the server's directory: make it
        # exist (empty, apart from what is bound under it) and start there.
        cwd = os.getcwd()
        cmd += ["--dir", cwd, "--chdir", cwd, "--", *argv]
        return cmd


def ffmpeg_input_paths(argv: Sequence[str]) -> list[Path]:
    """The local files an ffmpeg command line reads: each ``-i file:<path>`` (pure)."""
    found: list[Path] = []
    for option, value in itertools.pairwise(argv):
        if option == "-i" and value.startswith("file:"):
            found.append(Path(value.removeprefix("file:")))
    return found


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in _SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    return args


def _absolute(path: str | Path) -> str:
    # abspath, not resolve: bwrap resolves the source itself, and the target
    # must be the path ffmpeg is given, symlinks and all.
    return os.path.abspath(path)


def _unique(paths: Iterable[Path]) -> list[str]:
    return list(dict.fromkeys(_absolute(p) for p in paths))


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


async def detect_sandbox(mode: str, *, ffmpeg: str, scratch_root: Path) -> Sandbox:
    """The sandbox to use for ``mode`` (the `ffmpeg_sandbox` setting), checked by running ffmpeg.

    ``auto`` takes the first of bwrap and unshare that works and falls back to
    none with a warning; an explicit ``bwrap`` or ``unshare`` that does not
    work raises SandboxError, so the server refuses to start unconfined.
    """
    if mode not in MODES:
        raise SandboxError(f"unknown sandbox {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "none":
        log.warning("ffmpeg_sandbox", sandbox="none", reason="FRAMEFLOW_FFMPEG_SANDBOX=none")
        return NO_SANDBOX
    wanted = ("bwrap", "unshare") if mode == "auto" else (mode,)
    failures: dict[str, str] = {}
    for name in wanted:
        candidate, missing = _candidate(name)
        problem = missing if candidate is None else await _check(candidate, ffmpeg, scratch_root)
        if candidate is not None and problem is None:
            log.info("ffmpeg_sandbox", sandbox=candidate.name)
            return candidate
        failures[name] = problem or "unknown failure"
    summary = "; ".join(f"{name}: {why}" for name, why in failures.items())
    if mode != "auto":
        raise SandboxError(
            f"FRAMEFLOW_FFMPEG_SANDBOX={mode} cannot run ffmpeg here ({summary}); "
            "fix that, or choose another sandbox (auto, none)"
        )
    log.warning(
        "ffmpeg_sandbox",
        sandbox="none",
        reason=f"no sandbox works here, ffmpeg runs unconfined ({summary})",
    )
    return NO_SANDBOX


def _candidate(name: str) -> tuple[Bubblewrap | NetworkNamespace | None, str]:
    program = shutil.which("bwrap" if name == "bwrap" else "unshare")
    if program is None:
        package = "bubblewrap" if name == "bwrap" else "util-linux"
        return None, f"not installed (Debian package {package})"
    if name == "bwrap":
        return Bubblewrap(program), ""
    return NetworkNamespace(program), ""


async def _check(sandbox: Sandbox, ffmpeg: str, scratch_root: Path) -> str | None:
    """None when ffmpeg runs in ``sandbox`` and writes into a bound directory, else why not."""
    scratch = scratch_root / f"sandbox-check-{uuid.uuid4().hex}"
    try:
        scratch.mkdir(parents=True)
        out = scratch / "check.raw"
        argv = [
            ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=size=16x16:duration=0.04",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "file:" + str(out.absolute()),
        ]
        result = await run_ffmpeg(
            sandbox.wrap(argv, write=[scratch]), timeout=_CHECK_TIMEOUT_SECONDS
        )
        if not result.ok:
            return result.stderr_tail.strip()[-300:] or f"exit status {result.returncode}"
        if not out.is_file() or out.stat().st_size == 0:
            return "ffmpeg ran but wrote nothing into its directory"
        return None
    except (OSError, FfmpegError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
