"""ffmpeg runs confined: no network, no files but its own, no privileges (issue 9, item 19).

The escape tests run a job whose ffmpeg is handed hostile inputs with the
protocols that would let it out: a TCP URL to a listener this test runs on
loopback, and a concat list naming a file outside the job's scratch
directory. Unconfined, both succeed; in the sandbox, both fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings, SettingsError
from server import appkeys
from server.jobs.context import JobContext
from server.jobs.model import OutputFile
from server.jobs.operations.ffmpeg_run import run_ffmpeg_with_progress
from server.jobs.operations.protocol import OperationFailed
from server.media.process import run_ffmpeg
from server.media.sandbox import (
    NO_SANDBOX,
    Bubblewrap,
    NetworkNamespace,
    SandboxError,
    detect_sandbox,
    ffmpeg_input_paths,
)
from server.videos.model import Video
from tests import clips
from tests.op_harness import OpHarness

HAS_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(
    not HAS_BWRAP, reason="bubblewrap is not installed (scripts/test installs it: apt bubblewrap)"
)


# --- command lines (pure) -------------------------------------------------------


def test_bwrap_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "objects" / "source"
    argv = ["/opt/ff/ffmpeg", "-i", "file:" + str(source), "out.mp4"]
    cmd = Bubblewrap("/usr/bin/bwrap").wrap(argv, read=[source], write=[Path("work")])
    assert cmd[0] == "/usr/bin/bwrap"
    assert cmd[-len(argv) :] == argv and cmd[-len(argv) - 1] == "--"
    flags = cmd[: -len(argv)]
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent"):
        assert flag in flags
    # Killing the process group must reach ffmpeg: no new session inside.
    assert "--new-session" not in flags
    assert flags[flags.index("--uid") + 1] == "65534"

    def binds(kind: str) -> list[str]:
        return [flags[i + 1] for i, f in enumerate(flags) if f == kind]

    # The binary outside /usr, the input read-only, the scratch dir (made
    # absolute) writable, and nothing else of the host but the system dirs.
    assert "/opt/ff/ffmpeg" in binds("--ro-bind")
    assert binds("--ro-bind-try") == ["/etc/ld.so.cache", str(source)]
    assert binds("--bind") == [str(tmp_path / "work")]
    assert flags.index("--bind") < flags.index(str(source))  # read-only wins
    assert set(binds("--ro-bind")) <= {"/usr", "/bin", "/sbin", "/lib", "/lib64", "/opt/ff/ffmpeg"}
    assert flags[flags.index("--chdir") + 1] == str(tmp_path)


def test_bwrap_does_not_bind_a_binary_under_usr() -> None:
    cmd = Bubblewrap("/usr/bin/bwrap").wrap(["/usr/bin/ffmpeg", "-version"])
    ro = [cmd[i + 1] for i, f in enumerate(cmd) if f == "--ro-bind"]
    assert "/usr/bin/ffmpeg" not in ro


def test_unshare_and_none_command_lines() -> None:
    argv = ["ffmpeg", "-version"]
    assert NetworkNamespace("/usr/bin/unshare").wrap(argv) == [
        "/usr/bin/unshare",
        "--user",
        "--net",
        "--",
        *argv,
    ]
    assert NO_SANDBOX.wrap(argv, read=[Path("/x")]) == argv


def test_ffmpeg_input_paths() -> None:
    argv = [
        "-f",
        "mov",
        "-i",
        "file:/data/objects/a",
        "-i",
        "pipe:0",
        "-i",
        "file:rel/tile_%06d.png",
        "file:/data/work/out.mp4",
        "-i",
    ]
    assert ffmpeg_input_paths(argv) == [Path("/data/objects/a"), Path("rel/tile_%06d.png")]


def test_sandbox_setting_is_validated() -> None:
    with pytest.raises(SettingsError, match="FRAMEFLOW_FFMPEG_SANDBOX"):
        Settings(ffmpeg_sandbox="docker")


# --- detection ------------------------------------------------------------------


@needs_bwrap
async def test_auto_picks_bubblewrap(tmp_path: Path) -> None:
    sandbox = await detect_sandbox("auto", ffmpeg=clips.ffmpeg_exe(), scratch_root=tmp_path)
    assert sandbox.name == "bwrap"
    assert list(tmp_path.iterdir()) == []  # the check cleans up after itself


async def test_missing_sandbox_is_fatal_when_asked_for_and_a_warning_on_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ffmpeg = clips.ffmpeg_exe()
    with pytest.raises(SandboxError, match=r"bwrap: not installed \(Debian package bubblewrap\)"):
        await detect_sandbox("bwrap", ffmpeg=ffmpeg, scratch_root=tmp_path)
    with pytest.raises(SandboxError, match="unshare: not installed"):
        await detect_sandbox("unshare", ffmpeg=ffmpeg, scratch_root=tmp_path)
    assert await detect_sandbox("auto", ffmpeg=ffmpeg, scratch_root=tmp_path) is NO_SANDBOX
    assert await detect_sandbox("none", ffmpeg=ffmpeg, scratch_root=tmp_path) is NO_SANDBOX


@needs_bwrap
async def test_a_sandbox_that_cannot_run_ffmpeg_is_refused(tmp_path: Path) -> None:
    # An ffmpeg outside /usr that needs a library the sandbox does not bind.
    script = tmp_path / "ffmpeg"
    script.write_text(f'#!/bin/sh\nexec "{tmp_path}/lib/real-ffmpeg" "$@"\n')
    script.chmod(0o755)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "real-ffmpeg").symlink_to(clips.ffmpeg_exe())
    with pytest.raises(SandboxError, match="FRAMEFLOW_FFMPEG_SANDBOX=bwrap cannot run"):
        await detect_sandbox("bwrap", ffmpeg=str(script), scratch_root=tmp_path / "s")


@needs_bwrap
async def test_the_app_confines_ffmpeg_by_default(client: TestClient[Any, Any]) -> None:
    app = client.server.app
    assert app[appkeys.SANDBOX].name == "bwrap"
    assert app[appkeys.RUNNER].sandbox is app[appkeys.SANDBOX]


@needs_bwrap
async def test_bwrap_runs_as_nobody_without_capabilities() -> None:
    out: list[bytes] = []
    script = (
        "id -u; grep ^CapEff /proc/self/status; ls /etc; "
        "test -e /root && echo home-visible || echo home-hidden"
    )
    bwrap = Bubblewrap(shutil.which("bwrap") or "bwrap")
    result = await run_ffmpeg(
        bwrap.wrap(["/usr/bin/sh", "-c", script]), timeout=30, on_stdout=out.append
    )
    assert result.ok, result.stderr_tail
    lines = b"".join(out).decode().split()
    assert lines[0] == "65534"
    assert lines[1:3] == ["CapEff:", "0000000000000000"]
    # /etc holds only the loader cache; the server's home is not there at all.
    assert lines[3:] == ["ld.so.cache", "home-hidden"]


# --- escapes --------------------------------------------------------------------


@dataclass
class HostileOperation:
    """A job whose ffmpeg command line lets its input reach the network and other files."""

    args: Callable[[JobContext], list[str]]
    name: str = "hostile"
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"video"}))

    def parse_params(
        self, raw: Mapping[str, Any], video: Video, settings: Settings
    ) -> dict[str, Any]:
        return {}

    async def run(self, ctx: JobContext) -> list[OutputFile]:
        await run_ffmpeg_with_progress(ctx, self.args(ctx), duration=None)
        return []


class Listener:
    """A TCP server on loopback that counts the connections it gets."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()
            await writer.wait_closed()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clips.make_clip(tmp_path_factory.mktemp("sandbox") / "clip.mp4", seconds=1)


SANDBOXES = [
    pytest.param("bwrap", marks=needs_bwrap),
    pytest.param(
        "unshare", marks=pytest.mark.skipif(not shutil.which("unshare"), reason="no unshare")
    ),
]


@pytest.mark.parametrize("mode", SANDBOXES)
async def test_a_job_cannot_open_a_network_connection(
    clip: Path, tmp_path: Path, mode: str
) -> None:
    async with Listener() as listener, OpHarness.open(clip, tmp_path, ffmpeg_sandbox=mode) as h:
        assert h.sandbox.name == mode
        url = f"tcp://127.0.0.1:{listener.port}"
        hostile = HostileOperation(
            lambda ctx: [
                "-protocol_whitelist",
                "tcp,file,pipe",
                "-rw_timeout",
                "5000000",
                "-f",
                "mpegts",
                "-i",
                url,
                "-f",
                "null",
                "-",
            ]
        )
        with pytest.raises(OperationFailed, match=r"Connection refused|Network is unreachable"):
            async with asyncio.timeout(30):
                await h.run(hostile)
    assert listener.connections == 0


@needs_bwrap
async def test_a_job_cannot_read_files_outside_its_scratch_directory(
    clip: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "secret.mp4"
    secret.parent.mkdir()
    shutil.copyfile(clip, secret)  # a real video: unconfined, ffmpeg reads it fine

    def args(ctx: JobContext) -> list[str]:
        listing = ctx.workdir / "list.ffconcat"
        listing.write_text(f"ffconcat version 1.0\nfile 'file:{secret}'\n")
        return [
            "-protocol_whitelist",
            "file,pipe",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            "file:" + str(listing.absolute()),
            "-map",
            "0:v",
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ]

    async with OpHarness.open(clip, tmp_path) as h:
        assert h.sandbox.name == "bwrap"
        with pytest.raises(OperationFailed, match="No such file or directory"):
            async with asyncio.timeout(30):
                await h.run(HostileOperation(args))
    assert secret.exists() and os.access(secret, os.R_OK)
