"""The deployment files agree with the code: Dockerfile, compose, example env.

No Docker engine runs here, so the files are checked by parsing them: every
environment variable they set must be a real setting (a typo would be ignored
silently at run time), the settings they produce must validate, and the
image's health check command is run for real against a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import http.server
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.settings import Settings, env_name, secret_file_names
from server.db.pool import with_password

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / "config" / "production.env.example"

SETTING_FIELDS = dataclasses.fields(Settings)
ALIASES = {f.metadata["alias"] for f in SETTING_FIELDS if f.metadata.get("alias")}
SETTING_ENV_NAMES = {env_name(f.name) for f in SETTING_FIELDS}
KNOWN_ENV_NAMES = SETTING_ENV_NAMES | ALIASES | secret_file_names()
MINIO_POLICY = REPO / "deploy" / "minio" / "frameflow-policy.json"

# Inside a container the server must listen on every interface to be reachable.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

# Values for the variables that docker-compose.yml requires from `.env`.
COMPOSE_SECRETS = {
    "FRAMEFLOW_JWT_SECRET": "j" * 48,
    # Every character that means something in a URL: it must not break DATABASE_URL.
    "POSTGRES_PASSWORD": "p@ss/w#rd:%?&=",
    "MINIO_ROOT_PASSWORD": "minio-root-password",
    "MINIO_FRAMEFLOW_SECRET_KEY": "minio-frameflow-secret",
}


# --- docker-compose.yml ----------------------------------------------------------


class MissingVariable(Exception):
    """A `${NAME:?message}` variable is unset, so `docker compose` would refuse."""


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` substitution."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in {":-", "-"}:
            return arg if unset else str(current)
        if op in {":?", "?"}:
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _VARIABLE.sub(replace, value)


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    services = _compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service = services[name]
    assert isinstance(service, dict)
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment:`, whether written as a mapping or a list."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def _frameflow_env(env: Mapping[str, str]) -> dict[str, str]:
    raw = _environment(_service("frameflow"))
    return {key: interpolate(value, env) for key, value in raw.items()}


def test_compose_has_the_services() -> None:
    services = _compose()["services"]
    assert set(services) == {"frameflow", "postgres", "redis", "minio", "minio-init"}
    assert _service("frameflow")["build"] in (".", {"context": "."})
    assert str(_service("postgres")["image"]).startswith("postgres:16")
    assert str(_service("redis")["image"]).startswith("redis:7")
    assert "minio" in str(_service("minio")["image"])
    assert str(_service("minio-init")["image"]).startswith("minio/mc")


def test_compose_file_follows_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema (vendored by
    check-jsonschema, so nothing is fetched): a misspelt key fails here, not at `up`."""
    done = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_frameflow_env_names_are_settings() -> None:
    names = set(_environment(_service("frameflow")))
    unknown = names - KNOWN_ENV_NAMES
    assert not unknown, f"not Frameflow settings (typo?): {sorted(unknown)}"
    assert {"DATABASE_URL", "REDIS_URL"} <= ALIASES


def _service_env(name: str, env: Mapping[str, str] = COMPOSE_SECRETS) -> dict[str, str]:
    return {k: interpolate(v, env) for k, v in _environment(_service(name)).items()}


def test_compose_env_gives_valid_settings_pointing_at_the_services() -> None:
    env = _frameflow_env(COMPOSE_SECRETS)
    settings = Settings.from_env(env)  # raises SettingsError if any value is invalid

    assert settings.host == ALL_INTERFACES
    assert settings.storage == "s3"
    assert settings.jwt_secret == COMPOSE_SECRETS["FRAMEFLOW_JWT_SECRET"]
    assert urlsplit(settings.s3_endpoint_url)[1] == "minio:9000"
    assert len(settings.s3_bucket) >= 3
    assert urlsplit(settings.redis_url).hostname == "redis"

    # The password travels apart from the URL, so no character of it can break
    # the URL; the URL Frameflow connects with carries it percent-encoded.
    assert settings.database_password == COMPOSE_SECRETS["POSTGRES_PASSWORD"]
    assert urlsplit(settings.database_url).password is None
    database = urlsplit(with_password(settings.database_url, settings.database_password))
    assert (database.scheme, database.hostname, database.port) == ("postgresql", "postgres", 5432)
    assert unquote(database.password or "") == COMPOSE_SECRETS["POSTGRES_PASSWORD"]
    postgres = _service_env("postgres")
    assert (database.username, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_DB"],
    )
    assert postgres["POSTGRES_PASSWORD"] == settings.database_password


def test_compose_frameflow_uses_a_bucket_scoped_minio_user() -> None:
    settings = Settings.from_env(_frameflow_env(COMPOSE_SECRETS))
    minio, init = _service_env("minio"), _service_env("minio-init")
    # Not MinIO's root credentials...
    assert settings.s3_access_key_id != minio["MINIO_ROOT_USER"]
    assert settings.s3_secret_access_key != minio["MINIO_ROOT_PASSWORD"]
    assert "MINIO_ROOT_PASSWORD" not in " ".join(_environment(_service("frameflow")).values())
    # ...but the user minio-init creates, with the policy, on Frameflow's bucket.
    assert (init["FRAMEFLOW_USER"], init["FRAMEFLOW_SECRET"]) == (
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
    )
    assert init["BUCKET"] == settings.s3_bucket
    assert (init["MINIO_ROOT_USER"], init["MINIO_ROOT_PASSWORD"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    script = _init_script()
    assert 'mc mb --ignore-existing "local/$BUCKET"' in script
    assert 'mc admin user add local "$FRAMEFLOW_USER" "$FRAMEFLOW_SECRET"' in script
    created = re.search(r"mc admin policy create local (\S+) (\S+)", script)
    assert created, "no `mc admin policy create`"
    policy_name, policy_path = created.groups()
    assert f'mc admin policy attach local {policy_name} --user "$FRAMEFLOW_USER"' in script
    (mount,) = [v for v in _service("minio-init")["volumes"] if v.split(":")[1] == policy_path]
    assert (REPO / mount.split(":")[0]).resolve() == MINIO_POLICY
    assert mount.endswith(":ro")


def _init_script() -> str:
    """minio-init's shell script as the container's shell sees it ($$ -> $)."""
    service = _service("minio-init")
    assert service["entrypoint"][:2] == ["/bin/sh", "-ec"], "-e: any failing step fails the init"
    (script,) = service["command"]
    return interpolate(str(script), {})


# What S3Storage calls (aiobotocore method or paginator name) -> the IAM action it needs.
_S3_ACTIONS = {
    "head_bucket": ("s3:ListBucket", "bucket"),
    "list_objects_v2": ("s3:ListBucket", "bucket"),
    "list_multipart_uploads": ("s3:ListBucketMultipartUploads", "bucket"),
    "get_bucket_location": ("s3:GetBucketLocation", "bucket"),
    "head_object": ("s3:GetObject", "object"),
    "get_object": ("s3:GetObject", "object"),
    "put_object": ("s3:PutObject", "object"),
    "create_multipart_upload": ("s3:PutObject", "object"),
    "upload_part": ("s3:PutObject", "object"),
    "complete_multipart_upload": ("s3:PutObject", "object"),
    "abort_multipart_upload": ("s3:AbortMultipartUpload", "object"),
    "list_parts": ("s3:ListMultipartUploadParts", "object"),
    "delete_object": ("s3:DeleteObject", "object"),
    "delete_objects": ("s3:DeleteObject", "object"),
    # A presigned URL is a GetObject made later by whoever holds it, with our rights.
    "generate_presigned_url": ("s3:GetObject", "object"),
    # Only when the bucket is missing; minio-init creates it, so not granted.
    "create_bucket": (None, "bucket"),
}


def test_minio_policy_grants_what_storage_needs_on_the_bucket_only() -> None:
    bucket = Settings.from_env(_frameflow_env(COMPOSE_SECRETS)).s3_bucket
    policy = json.loads(MINIO_POLICY.read_text())
    granted: dict[str, set[str]] = {"bucket": set(), "object": set()}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            kind = {f"arn:aws:s3:::{bucket}": "bucket", f"arn:aws:s3:::{bucket}/*": "object"}
            assert resource in kind, f"{resource}: grants beyond the bucket {bucket!r}"
            for action in statement["Action"]:
                assert "*" not in action, f"{action}: wildcard actions grant too much"
                granted[kind[resource]].add(action)
    source = (REPO / "server" / "storage" / "s3.py").read_text()
    called = set(re.findall(r"client\.(\w+)\(", source))
    called |= set(re.findall(r'get_paginator\("(\w+)"\)', source))
    called -= {"get_paginator"}
    unknown = called - set(_S3_ACTIONS)
    assert not unknown, f"S3Storage calls {sorted(unknown)}: add them here and to the policy"
    for call in called:
        action, kind = _S3_ACTIONS[call]
        if action is not None:
            assert action in granted[kind], f"{call} needs {action} on the {kind}"


@pytest.mark.parametrize("missing", sorted(COMPOSE_SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing: str) -> None:
    env = {k: v for k, v in COMPOSE_SECRETS.items() if k != missing}
    for candidate in (env, {**env, missing: ""}):  # `:?` also rejects an empty value
        with pytest.raises(MissingVariable, match=missing):
            for name in _compose()["services"]:
                _service_env(name, candidate)


def test_compose_jwt_secret_is_a_required_variable() -> None:
    raw = _environment(_service("frameflow"))["FRAMEFLOW_JWT_SECRET"]
    assert raw.startswith("${FRAMEFLOW_JWT_SECRET:?")


def test_compose_services_are_healthchecked_and_awaited() -> None:
    depends_on = _service("frameflow")["depends_on"]
    assert isinstance(depends_on, dict), "depends_on must be the long form with conditions"
    for name in ("postgres", "redis", "minio"):
        test = _service(name).get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
    for name in ("postgres", "redis"):
        assert depends_on[name]["condition"] == "service_healthy"
    # MinIO through its init: healthy first, then the bucket and user made.
    assert depends_on["minio-init"]["condition"] == "service_completed_successfully"
    assert _service("minio-init")["depends_on"]["minio"]["condition"] == "service_healthy"
    assert _service("minio-init")["restart"] == "no"
    assert "pg_isready" in _service("postgres")["healthcheck"]["test"]


def test_compose_minio_serves_data_with_a_console() -> None:
    command = _service("minio")["command"]
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    assert words[:2] == ["server", "/data"]
    assert words[words.index("--console-address") + 1] == ":9001"


_MEMORY_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([bkmg])b?", str(size).lower())
    assert match, f"not a compose byte size: {size!r}"
    return int(float(match[1]) * _MEMORY_UNITS[match[2]])


@pytest.mark.parametrize("name", ["frameflow", "postgres", "redis", "minio", "minio-init"])
def test_compose_service_has_resource_limits(name: str) -> None:
    limits = _service(name)["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0
    assert _bytes(limits["memory"]) >= 64 * 1024**2
    assert int(limits["pids"]) > 0


def test_compose_worker_concurrency_fits_the_cpu_limit() -> None:
    # Inside a container os.cpu_count() is the host's: 0 (= CPU count) would
    # start more ffmpeg processes than the limit lets run.
    settings = Settings.from_env(_frameflow_env(COMPOSE_SECRETS))
    cpus = float(_service("frameflow")["deploy"]["resources"]["limits"]["cpus"])
    assert 1 <= settings.worker_concurrency <= max(1, int(cpus))


def test_compose_redis_memory_cap_is_under_its_limit() -> None:
    command = [str(w) for w in _service("redis")["command"]]
    cap = _bytes(command[command.index("--maxmemory") + 1])
    assert cap < _bytes(_service("redis")["deploy"]["resources"]["limits"]["memory"])


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(amount) * units[unit]
    return total


def test_compose_waits_longer_than_the_shutdown_grace() -> None:
    # Otherwise Docker's SIGKILL cuts uploads the server meant to let finish.
    grace = Settings.from_env(_frameflow_env(COMPOSE_SECRETS)).shutdown_grace_seconds
    assert _seconds(str(_service("frameflow")["stop_grace_period"])) > grace


# --- Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _all(keyword: str) -> list[str]:
    return [i.args for i in _dockerfile() if i.keyword == keyword]


def _env_pairs() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for args in _all("ENV"):
        for word in shlex.split(args):
            key, sep, value = word.partition("=")
            assert sep, f"use ENV KEY=value (got {word!r})"
            pairs[key] = value
    return pairs


def test_dockerfile_base_image() -> None:
    instructions = _dockerfile()
    assert instructions[0] == Instruction("FROM", "python:3.11-slim-bookworm")
    assert len(_all("FROM")) == 1


def test_dockerfile_installs_debian_ffmpeg() -> None:
    runs = [shlex.split(args) for args in _all("RUN")]
    installs = [words for words in runs if "apt-get" in words and "install" in words]
    assert any("ffmpeg" in words for words in installs), "no `apt-get install ffmpeg`"


def _pip_installs() -> list[list[str]]:
    commands = [c.strip() for run in _all("RUN") for c in run.split("&&")]
    return [shlex.split(c) for c in commands if c.startswith("pip install")]


def test_dockerfile_installs_locked_dependencies_then_the_package_alone() -> None:
    assert _pip_installs() == [
        ["pip", "install", "--no-deps", "--require-hashes", "-r", "requirements.lock"],
        ["pip", "install", "--no-deps", "."],
    ]
    order = [(i.keyword, i.args) for i in _dockerfile()]
    lock_copied = order.index(("COPY", "requirements.lock ./"))
    lock_installed = next(
        i for i, (keyword, args) in enumerate(order) if keyword == "RUN" and "lock" in args
    )
    assert lock_copied < lock_installed
    assert "[test]" not in " ".join(_all("RUN"))


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    instructions = _dockerfile()
    users = [i for i, ins in enumerate(instructions) if ins.keyword == "USER"]
    assert users, "no USER: the server would run as root"
    user = instructions[users[-1]].args
    # Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
    match = re.fullmatch(r"(\d+):(\d+)", user)
    assert match, f"USER {user}: use a numeric uid:gid"
    uid, gid = match.groups()
    assert int(uid) != 0 and int(gid) != 0
    # Everything after the last USER runs as that user; no RUN may need root there.
    assert all(ins.keyword != "RUN" for ins in instructions[users[-1] :])
    runs = " ".join(_all("RUN"))
    assert f"groupadd --system --gid {gid} " in runs
    assert f"useradd --system --uid {uid} --gid {gid} " in runs
    assert f"chown {uid}:{gid} /data" in runs


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        ["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    """An ignored rule needs its reason right above it, naming the rule."""
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"#\s*hadolint\s+(?:global\s+)?ignore=(\S+)", line.strip())
        if not match:
            continue
        above = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("#"):
                break
            above.append(previous)
        reason = " ".join(above)
        for rule in match[1].split(","):
            assert rule in reason and len(reason) > 60, f"line {number + 1}: why ignore {rule}?"


# --- requirements.lock ----------------------------------------------------------------

LOCK = REPO / "requirements.lock"
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;]+)(?:\s*;\s*(?P<marker>[^\\]+))?")


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _locked() -> dict[str, tuple[str, str | None, int]]:
    """name -> (version, marker, number of hashes)."""
    pins: dict[str, tuple[str, str | None, int]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match["name"])
            marker = match["marker"].strip() if match["marker"] else None
            pins[current] = (match["version"], marker, 0)
        elif "--hash=sha256:" in line and current:
            version, marker, hashes = pins[current]
            pins[current] = (version, marker, hashes + 1)
    return pins


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = _pyproject()
    excluded = {canonicalize_name(n) for n in project["tool"]["frameflow"]["image-excludes"]}
    locked = _locked()
    assert locked, "requirements.lock has no pins"
    for name, (version, _marker, hashes) in locked.items():
        assert hashes >= 1, f"{name}=={version} has no --hash (pip --require-hashes needs it)"
    for dependency in project["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        if name in excluded:
            assert name not in locked, f"{name} is excluded from the image but locked"
            continue
        assert name in locked, f"{name} is not in requirements.lock: run `bash scripts/lock`"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} breaks {requirement.specifier}: run `bash scripts/lock`"
        )


def test_lock_leaves_the_embedded_defaults_out() -> None:
    locked = _locked()
    # Their own dependencies too: pgserver brings psutil, fasteners and platformdirs.
    for name in ("pgserver", "imageio-ffmpeg", "psutil", "fasteners", "platformdirs"):
        assert name not in locked, f"{name} would ship in the production image"
    excludes = _pyproject()["tool"]["frameflow"]["image-excludes"]
    assert sorted(excludes) == ["imageio-ffmpeg", "pgserver"]


def test_lock_says_how_to_regenerate_it() -> None:
    head = LOCK.read_text().splitlines()[:3]
    assert any("bash scripts/lock" in line for line in head)
    script = (REPO / "scripts" / "lock").read_text()
    assert "image-excludes" in script and "--generate-hashes" in script


def test_dockerfile_cmd_runs_run_py() -> None:
    cmds = _all("CMD")
    assert len(cmds) == 1
    assert json.loads(cmds[0]) == ["python", "run.py"]
    assert not _all("ENTRYPOINT")
    assert _all("STOPSIGNAL") == ["SIGTERM"]


def test_dockerfile_serving_settings() -> None:
    env = _env_pairs()
    assert env["FRAMEFLOW_HOST"] == ALL_INTERFACES
    assert env["FRAMEFLOW_DATA_DIR"] == "/data"
    unknown = {k for k in env if k.startswith("FRAMEFLOW_")} - SETTING_ENV_NAMES
    assert not unknown, f"not Frameflow settings: {sorted(unknown)}"
    Settings.from_env(env)  # the image's own settings validate
    port = env.get("FRAMEFLOW_PORT", str(Settings().port))
    assert port in " ".join(_all("EXPOSE")).split()
    volumes = " ".join(_all("VOLUME"))
    assert "/data" in (json.loads(volumes) if volumes.startswith("[") else volumes.split())


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for args in _all("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def _ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        # A pattern matching a parent directory excludes everything below it.
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_copies_files_that_exist_and_are_not_ignored() -> None:
    patterns = _ignore_patterns()
    sources = _copy_sources()
    assert "run.py" in sources and "pyproject.toml" in sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
    # Python packages and data the server reads at run time are all shipped.
    for needed in ("config", "server", "sql", "static"):
        assert needed in sources, f"{needed}/ is not copied into the image"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _ignore_patterns()
    for path in ("data/pg/PG_VERSION", ".git/HEAD", ".venv/bin/python", "server/__pycache__/x.pyc"):
        assert _ignored(path, patterns), f"{path} would be sent to the build"


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/health/live" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_HealthHandler]]]:
    handler = type("Handler", (_HealthHandler,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _run_healthcheck(port: int) -> int:
    args = _all("HEALTHCHECK")
    assert len(args) == 1
    cmd = args[0][args[0].index("CMD ") + 4 :].strip()
    argv = json.loads(cmd)
    assert argv[0] == "python", "the slim image has no curl or wget; use python"
    env = {"FRAMEFLOW_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30
    ).returncode


def test_healthcheck_passes_when_live_and_fails_otherwise(
    health_server: tuple[http.server.HTTPServer, type[_HealthHandler]],
) -> None:
    server, handler = health_server
    port = server.server_address[1]
    assert "/health/live" in _all("HEALTHCHECK")[0]
    assert _run_healthcheck(port) == 0
    handler.status = 503
    assert _run_healthcheck(port) != 0
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    assert _run_healthcheck(closed_port) != 0


# --- config/production.env.example ----------------------------------------------------

_ENV_LINE = re.compile(r"^(?P<commented>#\s*)?(?P<name>FRAMEFLOW_[A-Z0-9_]+)=(?P<value>.*)$")


def _example() -> tuple[dict[str, str], set[str]]:
    """(uncommented settings, every FRAMEFLOW_ name mentioned as NAME=...)."""
    active: dict[str, str] = {}
    mentioned: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            mentioned.add(match["name"])
            if not match["commented"]:
                assert match["name"] not in active, f"{match['name']} set twice"
                active[match["name"]] = match["value"]
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"not a KEY=value line: {line!r}")
    return active, mentioned


def test_env_example_names_are_settings() -> None:
    _, mentioned = _example()
    unknown = mentioned - SETTING_ENV_NAMES
    assert not unknown, f"not Frameflow settings (typo?): {sorted(unknown)}"


def test_env_example_mentions_every_setting() -> None:
    _, mentioned = _example()
    missing = SETTING_ENV_NAMES - mentioned
    assert not missing, f"add these to config/production.env.example: {sorted(missing)}"


def test_env_example_values_are_valid_settings() -> None:
    active, _ = _example()
    for name, value in active.items():
        # env files are not shell: quotes would become part of the value.
        assert not value.startswith(("'", '"')), f"{name}: no quotes in env files"
    settings = Settings.from_env(active)
    assert settings.storage == "s3"
    assert settings.database_url and settings.redis_url and settings.jwt_secret


def test_env_example_commented_defaults_match_the_code() -> None:
    # A commented line documents the default; a stale one would mislead.
    defaults = {env_name(f.name): f.default for f in SETTING_FIELDS}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match and match["commented"]:
            default = defaults[match["name"]]
            value = match["value"]
            if isinstance(default, float):
                assert float(value) == default, match["name"]
            else:
                assert value == str(default), match["name"]
