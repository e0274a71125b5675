"""`/api/v1/credits`: the caller's balance and ledger; an admin's grant or adjustment."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.audit.origin import origin_of
from server.auth.middleware import current_user
from server.bodies import read_body
from server.credits.schemas import CreditChange
from server.credits.serializers import account_json, transaction_json
from server.http import path_uuid, query_int
from server.openapi.spec import (
    CURSOR,
    INTEGER,
    LIMIT,
    STRING,
    TIME,
    Answer,
    RouteSpec,
    described,
    nullable,
    obj,
    page_of,
)
from server.pagination import decode_cursor, page_body

_ACCOUNT = obj(balance=INTEGER, held=INTEGER)
_TRANSACTION = obj(
    id=STRING,
    kind={"enum": ["grant", "hold", "capture", "release", "refund", "adjustment"]},
    balance_delta=INTEGER,
    held_delta=INTEGER,
    balance_after=INTEGER,
    held_after=INTEGER,
    hold_id=nullable(STRING),
    actor_id=nullable(STRING),
    reason=nullable(STRING),
    created_at=TIME,
)


@described(
    RouteSpec(
        summary="The caller's credits: spendable balance and the amount held",
        tag="credits",
        ok={200: Answer("The account", _ACCOUNT)},
    )
)
async def get_credits(request: web.Request) -> web.Response:
    account = await request.app[appkeys.CREDITS].account(current_user(request).id)
    return web.json_response(account_json(account))


@described(
    RouteSpec(
        summary="The caller's credit ledger, newest first",
        tag="credits",
        params=[LIMIT, CURSOR],
        ok={200: Answer("A page", page_of(_TRANSACTION))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_transactions(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 20, lo=1, hi=100)
    cursor = request.query.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    rows = await request.app[appkeys.CREDITS].transactions(
        current_user(request).id, limit=limit + 1, before=before
    )
    return web.json_response(page_body(rows, limit, transaction_json))


@described(
    RouteSpec(
        summary="Grant credits to a user, or adjust their balance (admin)",
        tag="admin",
        body=CreditChange,
        ok={201: Answer("The ledger row and the account after it", obj())},
        errors={
            400: "`invalid_json` or `invalid_field` naming the field",
            402: "`insufficient_credits`: the adjustment would take the balance below zero",
            404: "`user_not_found`",
        },
    )
)
async def change_credits(request: web.Request) -> web.Response:
    admin = current_user(request)
    body = await read_body(request, CreditChange)
    tx, account = await request.app[appkeys.CREDITS].admin_change(
        path_uuid(request),
        body.kind,
        body.amount,
        admin=admin,
        reason=body.reason,
        origin=origin_of(request),
    )
    return web.json_response(
        {"transaction": transaction_json(tx), "account": account_json(account)}, status=201
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/credits", get_credits, name="credits.show")
    app.router.add_get("/api/v1/credits/transactions", list_transactions, name="credits.list")
    app.router.add_post(
        "/api/v1/admin/users/{id}/credits", change_credits, name="admin.users.credits"
    )
