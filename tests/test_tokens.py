"""Pure tests of token signing and the secret file: no database, no server."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from structlog.testing import capture_logs

from config.settings import Settings
from server.auth import secret as secret_module
from server.auth.devices import account_key, known_device
from server.auth.passwords import PasswordHasher, password_bytes
from server.auth.secret import load_or_create_secret
from server.auth.service import validate_email
from server.auth.tokens import (
    ACCESS_AUDIENCE,
    DEVICE_AUDIENCE,
    REFRESH_AUDIENCE,
    AccessClaims,
    RefreshClaims,
    TokenService,
)
from server.errors import BadRequest, Unauthorized

SECRET = "s" * 64  # long enough for the HS512 forgery test to sign without a warning
OTHER_SECRET = "o" * 48


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Overrides conftest's fixture of the same name: these tests need no database.
    return Settings(data_dir=tmp_path / "data", jwt_secret=SECRET, bcrypt_rounds=4)


@pytest.fixture
def tokens(settings: Settings) -> TokenService:
    return TokenService(SECRET, settings)


def _claims(audience: str, typ: str | None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "aud": audience,
        "typ": typ,
        "role": "user",
        "fam": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _rejected(decode: Any, token: str, code: str = "invalid_token") -> None:
    with pytest.raises(Unauthorized) as info:
        decode(token)
    assert info.value.status == 401
    assert info.value.error_code == code


# --- round trips --------------------------------------------------------------


def test_access_round_trip(tokens: TokenService, settings: Settings) -> None:
    user_id, session = uuid.uuid4(), uuid.uuid4()
    before = int(time.time())
    token, expires_in = tokens.issue_access(user_id, "admin", session)
    assert expires_in == settings.access_token_ttl_seconds
    claims = tokens.decode_access(token)
    assert claims == AccessClaims(user_id, "admin", session, claims.expires_at)
    assert before + expires_in <= claims.expires_at <= time.time() + expires_in
    # Without a session (tokens issued before sessions were named): none.
    assert tokens.decode_access(tokens.issue_access(user_id, "user")[0]).session_id is None


def test_access_tokens_carry_the_session_generation(tokens: TokenService) -> None:
    user_id = uuid.uuid4()
    token, _ = tokens.issue_access(user_id, "user", uuid.uuid4(), generation=3)
    assert tokens.decode_access(token).generation == 3
    # Generation 0 (and tokens from before `gen`) leave the claim out.
    plain = jwt.decode(tokens.issue_access(user_id, "user")[0], options={"verify_signature": False})
    assert "gen" not in plain
    assert tokens.decode_access(tokens.issue_access(user_id, "user")[0]).generation == 0


@pytest.mark.parametrize("sid", ["not-a-uuid", 7, ["x"]])
def test_a_malformed_session_claim_is_rejected(tokens: TokenService, sid: Any) -> None:
    _rejected(tokens.decode_access, _sign(_claims(ACCESS_AUDIENCE, "access", sid=sid)))


@pytest.mark.parametrize("gen", ["1", 1.5, True, [1]])
def test_a_malformed_generation_claim_is_rejected(tokens: TokenService, gen: Any) -> None:
    _rejected(tokens.decode_access, _sign(_claims(ACCESS_AUDIENCE, "access", gen=gen)))


def test_refresh_round_trip(tokens: TokenService, settings: Settings) -> None:
    user_id, jti, family = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    before = datetime.now(UTC)
    token, expires_at = tokens.issue_refresh(user_id, jti, family)
    assert tokens.decode_refresh(token) == RefreshClaims(user_id, jti, family)
    lifetime = (expires_at - before).total_seconds()
    assert abs(lifetime - settings.refresh_token_ttl_seconds) < 5
    assert expires_at.tzinfo is not None


def test_tokens_carry_audience_type_and_unique_ids(tokens: TokenService) -> None:
    user_id = uuid.uuid4()
    first = jwt.decode(tokens.issue_access(user_id, "user")[0], options={"verify_signature": False})
    second = jwt.decode(
        tokens.issue_access(user_id, "user")[0], options={"verify_signature": False}
    )
    assert first["aud"] == ACCESS_AUDIENCE and first["typ"] == "access"
    assert first["jti"] != second["jti"]
    refresh = jwt.decode(
        tokens.issue_refresh(user_id, uuid.uuid4(), uuid.uuid4())[0],
        options={"verify_signature": False},
    )
    assert refresh["aud"] == REFRESH_AUDIENCE and refresh["typ"] == "refresh"
    assert jwt.get_unverified_header(tokens.issue_access(user_id, "user")[0])["alg"] == "HS256"


# --- expiry -------------------------------------------------------------------


def test_expired_tokens_say_so(settings: Settings) -> None:
    past = time.time() - settings.refresh_token_ttl_seconds - 60
    old = TokenService(SECRET, settings, clock=lambda: past)
    _rejected(
        TokenService(SECRET, settings).decode_access,
        old.issue_access(uuid.uuid4(), "user")[0],
        "token_expired",
    )
    refresh, _ = old.issue_refresh(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    _rejected(TokenService(SECRET, settings).decode_refresh, refresh, "token_expired")


def test_small_clock_skew_is_tolerated(tokens: TokenService) -> None:
    # Expired two seconds ago and issued "in the future" by two seconds: both within leeway.
    now = int(time.time())
    token = _sign(_claims(ACCESS_AUDIENCE, "access", iat=now + 2, exp=now - 2))
    assert tokens.decode_access(token).role == "user"


# --- rejection ------------------------------------------------------------------


def test_access_and_refresh_tokens_are_not_interchangeable(tokens: TokenService) -> None:
    access, _ = tokens.issue_access(uuid.uuid4(), "user")
    refresh, _ = tokens.issue_refresh(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    _rejected(tokens.decode_refresh, access)
    _rejected(tokens.decode_access, refresh)


def test_device_tokens_stand_in_for_nothing_else(tokens: TokenService, settings: Settings) -> None:
    device, ttl = tokens.issue_device(account_key("Owner@Example.com"))
    assert ttl == settings.refresh_token_ttl_seconds  # as long as a session can last
    _rejected(tokens.decode_access, device)
    _rejected(tokens.decode_refresh, device)
    access, _ = tokens.issue_access(uuid.uuid4(), "user")
    refresh, _ = tokens.issue_refresh(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    _rejected(tokens.decode_device, access)
    _rejected(tokens.decode_device, refresh)
    _rejected(tokens.decode_device, _sign(_claims(DEVICE_AUDIENCE, "device"), OTHER_SECRET))
    _rejected(tokens.decode_device, _sign(_claims(DEVICE_AUDIENCE, "access")))


def test_known_device_names_one_account(tokens: TokenService, settings: Settings) -> None:
    device, _ = tokens.issue_device(account_key("owner@example.com"))
    device_id = tokens.decode_device(device).device_id
    # Any spelling of the same account, as login accepts it.
    assert known_device(tokens, device, " OWNER@example.com") == device_id
    assert known_device(tokens, device, "other@example.com") is None
    assert known_device(tokens, None, "owner@example.com") is None
    assert known_device(tokens, "garbage", "owner@example.com") is None
    past = time.time() - settings.refresh_token_ttl_seconds - 60
    old, _ = TokenService(SECRET, settings, clock=lambda: past).issue_device(
        account_key("owner@example.com")
    )
    assert known_device(tokens, old, "owner@example.com") is None


@pytest.mark.parametrize(
    ("audience", "typ"),
    [
        ("frameflow:other", "access"),
        (REFRESH_AUDIENCE, "access"),  # right typ, wrong audience
        (ACCESS_AUDIENCE, "refresh"),  # right audience, wrong typ
        (ACCESS_AUDIENCE, None),  # no typ at all
    ],
)
def test_wrong_audience_or_type_is_rejected(
    tokens: TokenService, audience: str, typ: str | None
) -> None:
    _rejected(tokens.decode_access, _sign(_claims(audience, typ)))


def test_refresh_with_wrong_type_is_rejected(tokens: TokenService) -> None:
    _rejected(tokens.decode_refresh, _sign(_claims(REFRESH_AUDIENCE, "access")))


def test_alg_none_is_rejected(tokens: TokenService) -> None:
    unsigned = jwt.encode(_claims(ACCESS_AUDIENCE, "access"), None, algorithm="none")
    _rejected(tokens.decode_access, unsigned)
    # The same token with a forged-looking empty signature segment.
    _rejected(tokens.decode_access, unsigned.rstrip(".") + ".")


def test_other_algorithms_with_our_key_are_rejected(tokens: TokenService) -> None:
    _rejected(tokens.decode_access, _sign(_claims(ACCESS_AUDIENCE, "access"), algorithm="HS512"))


def test_token_signed_with_another_key_is_rejected(tokens: TokenService) -> None:
    _rejected(tokens.decode_access, _sign(_claims(ACCESS_AUDIENCE, "access"), OTHER_SECRET))
    _rejected(tokens.decode_refresh, _sign(_claims(REFRESH_AUDIENCE, "refresh"), OTHER_SECRET))


def test_tampered_payload_is_rejected(tokens: TokenService) -> None:
    header, _, signature = tokens.issue_access(uuid.uuid4(), "user")[0].split(".")
    forged = jwt.utils.base64url_encode(
        json.dumps(_claims(ACCESS_AUDIENCE, "access", role="admin")).encode()
    ).decode()
    _rejected(tokens.decode_access, f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "aud"])
def test_required_claims(tokens: TokenService, missing: str) -> None:
    _rejected(tokens.decode_access, _sign(_claims(ACCESS_AUDIENCE, "access", **{missing: None})))
    _rejected(tokens.decode_refresh, _sign(_claims(REFRESH_AUDIENCE, "refresh", **{missing: None})))


@pytest.mark.parametrize(
    "overrides",
    [{"sub": "not-a-uuid"}, {"role": "root"}, {"role": None}, {"sub": 42}],
)
def test_malformed_access_claims_are_rejected(
    tokens: TokenService, overrides: dict[str, Any]
) -> None:
    _rejected(tokens.decode_access, _sign(_claims(ACCESS_AUDIENCE, "access", **overrides)))


@pytest.mark.parametrize("overrides", [{"fam": None}, {"fam": "x"}, {"jti": "not-a-uuid"}])
def test_malformed_refresh_claims_are_rejected(
    tokens: TokenService, overrides: dict[str, Any]
) -> None:
    _rejected(tokens.decode_refresh, _sign(_claims(REFRESH_AUDIENCE, "refresh", **overrides)))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "a.b", "Bearer x", "é.é.é"])
def test_garbage_is_rejected(tokens: TokenService, garbage: str) -> None:
    _rejected(tokens.decode_access, garbage)
    _rejected(tokens.decode_refresh, garbage)


def test_errors_name_the_scheme_but_not_the_token(tokens: TokenService) -> None:
    with pytest.raises(Unauthorized) as info:
        tokens.decode_access("definitely-not-a-token")
    assert "definitely-not-a-token" not in str(info.value.body())
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer ")


def test_short_secrets_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenService("short", settings)


# --- the secret file --------------------------------------------------------------


def test_configured_secret_wins_and_no_file_is_written(settings: Settings) -> None:
    assert load_or_create_secret(settings) == SECRET
    assert not (settings.data_dir / "jwt_secret").exists()


def test_generated_secret_is_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nested" / "data")  # created on demand
    first = load_or_create_secret(settings)
    path = settings.data_dir / "jwt_secret"
    assert len(first) >= 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(settings) == first
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["jwt_secret"]


def _write_secret(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


def test_existing_secret_file_is_used(tmp_path: Path) -> None:
    _write_secret(tmp_path / "jwt_secret", "k" * 40 + "\n")
    with capture_logs() as logs:
        assert load_or_create_secret(Settings(data_dir=tmp_path)) == "k" * 40
    assert logs == []


def test_readable_secret_file_is_used_with_a_warning(tmp_path: Path) -> None:
    _write_secret(tmp_path / "jwt_secret", "k" * 40, mode=0o644)
    with capture_logs() as logs:
        assert load_or_create_secret(Settings(data_dir=tmp_path)) == "k" * 40
    assert [e["event"] for e in logs] == ["jwt_secret_file_too_open"]
    assert "k" * 40 not in str(logs)


def test_truncated_secret_file_is_loud(tmp_path: Path) -> None:
    _write_secret(tmp_path / "jwt_secret", "short\n")
    with pytest.raises(RuntimeError, match="shorter than 32"):
        load_or_create_secret(Settings(data_dir=tmp_path))


def test_losing_the_creation_race_keeps_the_winner(tmp_path: Path) -> None:
    path = tmp_path / "jwt_secret"
    assert secret_module._create_secret_file(path, "a" * 64) is True
    assert secret_module._create_secret_file(path, "b" * 64) is False
    assert path.read_text().strip() == "a" * 64
    assert os.listdir(tmp_path) == ["jwt_secret"]  # the loser's temp file is gone


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    starters = 16
    barrier = threading.Barrier(starters)

    def start() -> str:
        barrier.wait()
        return load_or_create_secret(settings)

    with ThreadPoolExecutor(starters) as pool:
        results = list(pool.map(lambda _: start(), range(starters)))
    assert len(set(results)) == 1
    assert (settings.data_dir / "jwt_secret").read_text().strip() == results[0]
    assert os.listdir(settings.data_dir) == ["jwt_secret"]


# --- input rules (pure parts of the service) ------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["a@example.com", "  Mixed.Case+tag@Example.ORG ", "ü@bücher.de", "x@a.b", "a" * 64 + "@x.io"],
)
def test_valid_emails(email: str) -> None:
    assert validate_email(email) == email.strip()


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "plain",
        "a@b",
        "@example.com",
        "a@@example.com",
        "a@b@example.com",
        "a b@example.com",
        "a@exa mple.com",
        "a@.com",
        "a@example.",
        "a@example..com",
        "a\x00@example.com",
        "a@example.com\x7f",
        "a@exa\u200bmple.com",  # zero-width space: a format character
        "a@example.com\ud800",  # lone surrogate
        "a" * 250 + "@x.io",  # 255 characters
    ],
)
def test_invalid_emails(email: str) -> None:
    with pytest.raises(BadRequest) as info:
        validate_email(email)
    assert info.value.error_code == "invalid_email"


@pytest.mark.parametrize("password", ["12345678", "é" * 36, "x" * 72, "pass word"])
def test_acceptable_passwords(password: str) -> None:
    assert 8 <= len(password_bytes(password)) <= 72


@pytest.mark.parametrize(
    "password", ["", "1234567", "x" * 73, "é" * 37, "€" * 25, "ab\ud800cdefgh"]
)
def test_unacceptable_passwords(password: str) -> None:
    with pytest.raises(BadRequest) as info:
        password_bytes(password)
    assert info.value.error_code == "invalid_password"


async def test_password_hash_and_verify() -> None:
    hasher = PasswordHasher(4)
    hashed = await hasher.hash("correct horse")
    assert hashed.startswith("$2b$04$")
    assert await hasher.verify("correct horse", hashed)
    assert not await hasher.verify("wrong horse!", hashed)
    # Never an exception from verify, whatever comes in or is stored.
    assert not await hasher.verify("x" * 100, hashed)
    assert not await hasher.verify("correct horse", "not-a-bcrypt-hash")
    await hasher.verify_dummy("anything at all")
    await hasher.verify_dummy("x" * 100)
