"""Settings: env parsing, validation messages, and the README's table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, env_name

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_are_valid() -> None:
    s = Settings()
    assert s.storage == "local"
    assert s.data_dir == Path("./data")


def test_env_overrides_and_types() -> None:
    s = Settings.from_env(
        {
            "FRAMEFLOW_PORT": "9000",
            "FRAMEFLOW_MAX_UPLOAD_BYTES": "1_000",
            "FRAMEFLOW_DATA_DIR": "/srv/ff",
            "FRAMEFLOW_SHUTDOWN_GRACE_SECONDS": "2.5",
        }
    )
    assert (s.port, s.max_upload_bytes, s.data_dir) == (9000, 1000, Path("/srv/ff"))
    assert s.shutdown_grace_seconds == 2.5


def test_aliases_and_precedence() -> None:
    env = {"DATABASE_URL": "postgresql://a/b", "REDIS_URL": "redis://r"}
    s = Settings.from_env(env)
    assert s.database_url == "postgresql://a/b"
    assert s.redis_url == "redis://r"
    s = Settings.from_env({**env, "FRAMEFLOW_DATABASE_URL": "postgresql://c/d"})
    assert s.database_url == "postgresql://c/d"
    # Explicit overrides (CLI flags) beat the environment; None means "not given".
    s = Settings.from_env({"FRAMEFLOW_PORT": "1"}, port=2, host=None)
    assert s.port == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FRAMEFLOW_PORT": "eighty"}, "FRAMEFLOW_PORT='eighty' is not a valid int"),
        ({"FRAMEFLOW_STORAGE": "ftp"}, "FRAMEFLOW_STORAGE: must be 'local' or 's3'"),
        ({"FRAMEFLOW_S3_PART_SIZE": "1024"}, "FRAMEFLOW_S3_PART_SIZE: S3 parts must be"),
        ({"FRAMEFLOW_JWT_SECRET": "short"}, "FRAMEFLOW_JWT_SECRET: must be at least 32"),
        ({"FRAMEFLOW_PUBLIC_URL": "example.com"}, "FRAMEFLOW_PUBLIC_URL: must start with"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)


def test_secrets_are_masked() -> None:
    s = Settings(
        jwt_secret="s" * 40, s3_secret_access_key="k", database_url="postgresql://u:pw@h/d"
    )
    described = s.describe()
    assert described["jwt_secret"] == "***"
    assert described["database_url"] == "***"
    assert "pw@" not in repr(s) and "s" * 40 not in repr(s)


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text("utf-8")
    documented = set(re.findall(r"^\| `(FRAMEFLOW_[A-Z0-9_]+)`", readme, flags=re.M))
    declared = {env_name(f.name) for f in dataclasses.fields(Settings)}
    assert declared - documented == set(), "settings missing from the README table"
    assert documented - declared == set(), "README documents settings that do not exist"
