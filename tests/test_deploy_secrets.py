"""Secrets as deployments hand them over: `*_FILE` variables, and database
passwords that are not URL-safe, checked on the wire against a fake server."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from config.settings import Settings, SettingsError, env_name, secret_file_names
from server.db.pool import resolve_database_url, with_password

SECRET_FIELDS = [f.name for f in dataclasses.fields(Settings) if f.metadata.get("secret")]
HOSTILE_PASSWORDS = ["p@ss", "a/b", "x#y", "u:v", "100%", "p@ss/w#rd:%?&= ü", ":@/#"]


def _value_for(name: str) -> str:
    return {
        "database_url": "postgresql://u@db.example:5432/d",
        "redis_url": "redis://redis.example:6379/0",
        "jwt_secret": "j" * 40,
    }.get(name, "s3cr3t with spaces inside")


@pytest.mark.parametrize("name", SECRET_FIELDS)
def test_every_secret_reads_from_a_file(name: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(_value_for(name) + "\n")  # as `echo` and editors leave it
    env = {env_name(name) + "_FILE": str(secret)}
    if name == "database_password":
        env["DATABASE_URL"] = "postgresql://u@db.example/d"
    assert getattr(Settings.from_env(env), name) == _value_for(name)


def test_file_variables_cover_secrets_and_their_aliases() -> None:
    names = secret_file_names()
    assert {"FRAMEFLOW_JWT_SECRET_FILE", "DATABASE_URL_FILE", "REDIS_URL_FILE"} <= names
    assert "FRAMEFLOW_PORT_FILE" not in names  # only secrets
    # An alias's file works like the alias.
    assert Settings.from_env({}).database_url == ""


def test_alias_file(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("postgresql://u@h/d")
    assert Settings.from_env({"DATABASE_URL_FILE": str(tmp_path / "url")}).database_url == (
        "postgresql://u@h/d"
    )


def test_a_variable_and_its_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("x" * 40)
    env = {"FRAMEFLOW_JWT_SECRET": "y" * 40, "FRAMEFLOW_JWT_SECRET_FILE": str(tmp_path / "s")}
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env(env)


def test_an_unreadable_file_names_the_variable(tmp_path: Path) -> None:
    env = {"FRAMEFLOW_JWT_SECRET_FILE": str(tmp_path / "missing")}
    with pytest.raises(SettingsError, match="FRAMEFLOW_JWT_SECRET_FILE"):
        Settings.from_env(env)


def test_a_bad_secret_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FRAMEFLOW_JWT_SECRET": "too-short-but-secret"})
    assert "too-short-but-secret" not in str(caught.value)


def test_database_password_needs_a_url() -> None:
    with pytest.raises(SettingsError, match="FRAMEFLOW_DATABASE_PASSWORD"):
        Settings(database_password="x")


@pytest.mark.parametrize("password", HOSTILE_PASSWORDS)
def test_with_password_keeps_the_rest_of_the_url(password: str) -> None:
    url = with_password(
        "postgresql://frameflow:old@postgres:5432/frameflow?sslmode=disable", password
    )
    assert url.startswith("postgresql://frameflow:")
    assert url.endswith("@postgres:5432/frameflow?sslmode=disable")
    assert with_password("postgresql://u@h/d", "") == "postgresql://u@h/d"


# --- on the wire: what asyncpg really sends -------------------------------------------


@dataclass
class FakePostgres:
    """Speaks just enough of the PostgreSQL protocol to ask for a cleartext
    password, record what the client sends, and refuse it."""

    port: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length, code = struct.unpack("!ii", await reader.readexactly(8))
            if code == 80877103:  # SSLRequest: "no", then the real startup message
                writer.write(b"N")
                length, code = struct.unpack("!ii", await reader.readexactly(8))
            fields = (await reader.readexactly(length - 8)).split(b"\0")
            params = dict(zip(fields[0::2], fields[1::2], strict=False))
            writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind, size = struct.unpack("!ci", await reader.readexactly(5))
            assert kind == b"p"
            password = (await reader.readexactly(size - 4)).rstrip(b"\0")
            self.seen.append(
                {
                    "user": params[b"user"].decode(),
                    "database": params.get(b"database", b"").decode(),
                    "password": password.decode(),
                }
            )
            body = b"SFATAL\0C28P01\0Mfake server refuses everyone\0\0"
            writer.write(b"E" + struct.pack("!i", len(body) + 4) + body)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def fake_postgres() -> AsyncIterator[FakePostgres]:
    fake = FakePostgres()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake


@pytest.mark.parametrize("password", HOSTILE_PASSWORDS)
async def test_hostile_database_password_reaches_the_server_intact(
    fake_postgres: FakePostgres, password: str, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text(password + "\n")
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"postgresql://frameflow@127.0.0.1:{fake_postgres.port}/frameflow",
            "FRAMEFLOW_DATABASE_PASSWORD_FILE": str(tmp_path / "pw"),
        }
    )
    dsn = await resolve_database_url(settings)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn, ssl=False, timeout=10)
    assert fake_postgres.seen == [
        {"user": "frameflow", "database": "frameflow", "password": password}
    ]
