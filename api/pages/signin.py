"""API (duty pages): signing in with a phone number and password, signing out, and opening one
alarm from a notification's link.

A link made out to one person (``lifecycle.acknowledge``) is shown with a button; pressing it
(a POST, so a chat app's link preview uses nothing up) uses the link once and opens a session
for that person bound to that alarm, for ``pages_link_session_minutes``. Anything else needs a
full sign-in, and a link posted to a group robot, or one naming nobody on the roster, always
does.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

from api.deps import AsyncConn, Db, act, blocking
from api.pages import web
from api.pages.sessions import (
    LoginLimits,
    Refusal,
    attempt,
    check,
    end_session,
    open_session,
    record_failure,
    record_success,
    rehashed,
)
from core.audit import Actor
from core.db import Conn
from lifecycle.acknowledge import AckError, AckToken, read_token

router = APIRouter(prefix="/duty", include_in_schema=False)
Field = Annotated[str, Form(max_length=300)]


def _limits(request: Request) -> LoginLimits:
    s = web.settings_of(request)
    return LoginLimits(
        lockout_failures=s.pages_lockout_failures,
        lockout=timedelta(minutes=s.pages_lockout_minutes),
        per_phone=s.pages_failures_per_phone,
        per_client=s.pages_failures_per_client,
        window=timedelta(minutes=s.pages_failure_window_minutes),
    )


def _login_page(request: Request, next_url: str, error: str = "", status: int = 200) -> Response:
    token = web.form_token(request)
    response = web.page(
        "login.html", status, csrf=token, next=web.safe_next(next_url), error=error, me=None
    )
    web.set_cookie(response, request, web.CSRF_COOKIE, token, 3600)
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/duty") -> Response:
    return _login_page(request, next)


@router.post("/login")
async def login(
    request: Request,
    phone: Annotated[str, Form(max_length=40)],
    password: Annotated[str, Form(max_length=300)],
    csrf: Field = "",
    next: Field = "/duty",
) -> Response:
    if not web.double_submitted(request, csrf):
        return _login_page(request, next, web.refused_form(request), 403)
    client = web.client_of(request)
    limits = _limits(request)
    s = web.settings_of(request)
    now = web.now()
    pool: AsyncConnectionPool[AsyncConn] = request.app.state.pool
    async with pool.connection() as db:  # held for one query, not for the password check
        attempted = await attempt(db, phone, client, limits, now)
    if isinstance(attempted, Refusal):
        return _login_page(request, next, attempted.message, attempted.status)
    a = attempted
    # argon2 in a thread with no connection held, so slow hashes cannot exhaust the pool.
    who = await anyio.to_thread.run_sync(check, a, password, now)
    new_hash = None
    if not isinstance(who, Refusal):
        new_hash = await anyio.to_thread.run_sync(rehashed, a, password)
    act(request, Actor(f"duty pages sign-in {a.phone} from {client}", "api"))

    def run(c: Conn) -> Refusal | str:
        if isinstance(who, Refusal):
            record_failure(c, a, client, limits, now)
            return who
        record_success(c, who, new_hash)
        expires = now + timedelta(hours=s.pages_session_hours)
        return open_session(c, who, client=client, expires_at=expires)

    result = await blocking(request, run)
    if isinstance(result, Refusal):
        return _login_page(request, next, result.message, result.status)
    response = web.redirect(web.safe_next(next))
    web.signed_in(response, request, result, int(s.pages_session_hours * 3600))
    return response


@router.post("/logout")
async def logout(request: Request, db: Db, csrf: Field = "") -> Response:
    me = await web.session(request, db)
    if me is None:
        return web.redirect("/duty/login")
    if not web.same_token(me.csrf, csrf):
        return web.message(403, "请求无效 Refused", web.EXPIRED)
    act(request, Actor(f"{me.name} (duty pages, person {me.person_id})", "api"))
    await blocking(request, lambda c: end_session(c, me.id, web.now()))
    response = web.redirect("/duty/login")
    web.clear_cookie(response, request, web.SESSION_COOKIE)
    return response


def _link(request: Request, token: str) -> AckToken | Response:
    secret = web.settings_of(request).notify_ack_secret.get_secret_value()
    if not secret:
        return web.message(404, "链接无效 No such link", "此平台未启用通知链接 Links are off here")
    try:
        return read_token(secret, token, now=time.time())
    except AckError as e:
        expired = "expired" in str(e)
        return web.message(
            410 if expired else 400,
            "链接已过期 Link expired" if expired else "链接无效 Invalid link",
            f"请登录后查看 Sign in to see the alarm. ({e})",
            sign_in=True,
        )


async def _used(db: Db, t: AckToken) -> bool:
    cur = await db.execute("SELECT 1 FROM ack_tokens_used WHERE token_id = %s", (t.token_id,))
    return await cur.fetchone() is not None


def _sign_in_first(t: AckToken) -> Response:
    return web.redirect(f"/duty/login?next=/duty/alarms/{t.alarm_id}")


def _used_page() -> Response:
    return web.message(
        410,
        "链接已使用 Link used",
        "此链接只能使用一次，请登录 Each link works once; sign in",
        sign_in=True,
    )


@router.get("/link/{token}")
async def show_link(request: Request, db: Db, token: str) -> Response:
    t = _link(request, token)
    if isinstance(t, Response):
        return t
    if t.person_id is None or t.for_group:
        return _sign_in_first(t)
    if await _used(db, t):
        return _used_page()
    csrf = web.form_token(request)
    response = web.page("link.html", csrf=csrf, token=token, person=t.person, me=None)
    web.set_cookie(response, request, web.CSRF_COOKIE, csrf, 3600)
    return response


@router.post("/link/{token}")
async def use_link(request: Request, db: Db, token: str, csrf: Field = "") -> Response:
    t = _link(request, token)
    if isinstance(t, Response):
        return t
    if t.person_id is None or t.for_group:
        return _sign_in_first(t)
    if not web.double_submitted(request, csrf):
        return web.message(403, "请求无效 Refused", web.refused_form(request))
    me = await web.session(request, db)
    if me is not None and me.full and me.person_id == t.person_id:
        return web.redirect(f"/duty/alarms/{t.alarm_id}")  # already signed in: keep the link
    s = web.settings_of(request)
    client = web.client_of(request)
    person_id = t.person_id
    act(request, Actor(f"{t.person} (duty pages link, person {person_id})", "api"))

    def run(c: Conn) -> str | None:
        alive = c.execute("SELECT 1 FROM people WHERE id = %s AND active", (person_id,)).fetchone()
        used = c.execute(
            "INSERT INTO ack_tokens_used (token_id, alarm_id, used_by) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING token_id",
            (t.token_id, t.alarm_id, f"{t.person} (opened on the duty pages)"),
        ).fetchone()
        if alive is None or used is None:
            return None
        minutes = timedelta(minutes=s.pages_link_session_minutes)
        expires = web.now() + minutes
        return open_session(c, person_id, client=client, expires_at=expires, alarm_id=t.alarm_id)

    session_token = await blocking(request, run)
    if session_token is None:
        return _used_page()
    response = web.redirect(f"/duty/alarms/{t.alarm_id}")
    age = int(s.pages_link_session_minutes * 60)
    web.signed_in(response, request, session_token, age)
    return response
