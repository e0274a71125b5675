"""The API's named rate limits, read from settings; a refusal is a 429 with Retry-After.

Per IP, the limits slow down guessing and mass sign-ups from one place; per
account, guessing one account's password from many places; per user, one
account flooding uploads or the job queue. A call made with an API key counts
against the key as well as its owner, so one busy key shows up on its own and
many keys still share their owner's allowance. A limit of 0 turns that one off.

Limits keyed by the client alone are hit before the body is read, so a
request counts even when its body turns out malformed or hostile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiohttp import web

from server import appkeys
from server.auth.devices import DEVICE_COOKIE, account_key, known_device
from server.auth.model import AuthUser
from server.errors import HTTPError, TooManyRequests
from server.limits.client_ip import client_ip

MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int  # hits per window; 0 = unlimited
    window_seconds: float
    what: str  # for the message: "login attempts"


def _rules(request: web.Request) -> dict[str, Rule]:
    s = request.app[appkeys.SETTINGS]
    return {
        "login": Rule("login", s.rate_limit_login_per_minute, MINUTE, "login attempts"),
        "register": Rule("register", s.rate_limit_register_per_hour, HOUR, "sign-ups"),
        "refresh": Rule("refresh", s.rate_limit_refresh_per_minute, MINUTE, "token refreshes"),
        "upload": Rule("upload", s.rate_limit_uploads_per_hour, HOUR, "uploads"),
        "job": Rule("job", s.rate_limit_jobs_per_minute, MINUTE, "new jobs"),
        # Recovery is guessed and abused like login (a reset mails someone): the same budget.
        "password_reset": Rule(
            "password_reset", s.rate_limit_login_per_minute, MINUTE, "password reset requests"
        ),
        "password_change": Rule(
            "password_change", s.rate_limit_login_per_minute, MINUTE, "password attempts"
        ),
        "account_token": Rule(
            "account_token", s.rate_limit_login_per_minute, MINUTE, "link attempts"
        ),
        "verify_resend": Rule(
            "verify_resend", s.rate_limit_register_per_hour, HOUR, "verification emails"
        ),
        # A share link's password is guessed like an account's: the same budget.
        "share_unlock": Rule(
            "share_unlock", s.rate_limit_login_per_minute, MINUTE, "password attempts"
        ),
    }


async def _check(request: web.Request, rule_name: str, subject: str) -> None:
    rule = _rules(request)[rule_name]
    if rule.limit <= 0:
        return
    limiter = request.app[appkeys.RATE_LIMITER]
    wait = await limiter.hit(f"{rule.name}:{subject}", rule.limit, rule.window_seconds)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise TooManyRequests(seconds, f"Too many {rule.what}; try again in {seconds} s")


async def limit_login_ip(request: web.Request) -> None:
    """Before the body is read: every attempt from an address counts, even one
    whose body is not JSON at all."""
    await _check(request, "login", "ip:" + client_ip(request))


async def limit_login_account(request: web.Request, email: str) -> None:
    """Every attempt counts, right or wrong: a limit on failures alone could be
    probed for which passwords are right.

    Per account for unknown clients; a client with a known-device cookie for
    this account is counted on its own instead, so strangers failing on
    purpose cannot lock the owner out (`server.auth.devices`).
    """
    cookie = request.cookies.get(DEVICE_COOKIE)
    device = known_device(request.app[appkeys.TOKENS], cookie, email)
    if device is not None:
        await _check(request, "login", "device:" + device)
    else:
        await _check(request, "login", "account:" + account_key(email))


async def limit_register(request: web.Request) -> None:
    await _check(request, "register", "ip:" + client_ip(request))


async def limit_password_reset_ip(request: web.Request) -> None:
    """Before the body is read, like `limit_login_ip`."""
    await _check(request, "password_reset", "ip:" + client_ip(request))


async def limit_password_reset_account(request: web.Request, email: str) -> None:
    """Per address, known or not: how often one mailbox can be sent reset links."""
    await _check(request, "password_reset", "account:" + account_key(email))


async def limit_account_token(request: web.Request) -> None:
    """Using a mailed link (verify, reset): per client IP."""
    await _check(request, "account_token", "ip:" + client_ip(request))


async def limit_password_change(request: web.Request, user: AuthUser) -> None:
    """Guessing the current password from a stolen session costs like a login."""
    await _check(request, "password_change", f"user:{user.id}")


async def limit_verification_resend(request: web.Request, user: AuthUser) -> None:
    await _check(request, "verify_resend", f"user:{user.id}")


async def limit_refresh_ip(request: web.Request) -> None:
    """Before the body is read, like `limit_login_ip`."""
    await _check(request, "refresh", "ip:" + client_ip(request))


async def limit_refresh_account(request: web.Request, refresh_token: str) -> None:
    try:
        claims = request.app[appkeys.TOKENS].decode_refresh(refresh_token)
    except HTTPError:
        return  # the refresh itself answers 401; only the IP limit applies
    await _check(request, "refresh", f"user:{claims.user_id}")


def _callers(user: AuthUser) -> list[str]:
    subjects = [f"user:{user.id}"]
    if user.api_key_id is not None:
        subjects.append(f"key:{user.api_key_id}")
    return subjects


async def limit_upload(request: web.Request, user: AuthUser) -> None:
    for subject in _callers(user):
        await _check(request, "upload", subject)


async def limit_job(request: web.Request, user: AuthUser) -> None:
    for subject in _callers(user):
        await _check(request, "job", subject)


async def limit_share_unlock(request: web.Request, token: str) -> None:
    """Per address and per link: guessing one link's password from many places
    is slowed down as much as from one."""
    await _check(request, "share_unlock", "ip:" + client_ip(request))
    await _check(request, "share_unlock", "share:" + token[:64])
