"""API (duty pages): what every page shares: the templates, the security headers, the session
cookie, CSRF checks and the caller as the JSON API sees it (``api.deps.Principal``), so every
action goes through the API's own scope checks and lifecycle code."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import AsyncConn, Principal
from api.pages import view
from api.pages.sessions import PAGE_ROLES, Session, session_of
from core.settings import Settings

SESSION_COOKIE: Final = "sw_session"
CSRF_COOKIE: Final = "sw_csrf"  # the double-submit token of the forms used before a session
COOKIE_PATH: Final = "/duty"
# The firm console's copy of a manager's session (api/pages/console.py), kept for its own path.
CONSOLE_COOKIE: Final = "sw_console"
CONSOLE_PATH: Final = "/console"
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # links carry tokens: never pass them on
    "Cache-Control": "no-store",
}
TEMPLATES: Final = Path(__file__).parent / "templates"


@cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        auto_reload=False,
    )
    env.filters["beijing"] = view.beijing
    env.globals.update(
        status=view.STATUS, limits=view.LIMITS, outcomes=view.OUTCOMES, roles=view.ROLES
    )
    return env


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def message(status: int, title: str, text: str, *, sign_in: bool = False) -> HTMLResponse:
    return page("message.html", status, title=title, text=text, sign_in=sign_in, me=None)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def settings_of(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=settings_of(request).pages_cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, request: Request, name: str, path: str = COOKIE_PATH) -> None:
    response.delete_cookie(
        name,
        path=path,
        secure=settings_of(request).pages_cookie_secure,
        httponly=True,
        samesite="lax",
    )


def signed_in(response: Response, request: Request, token: str, max_age: int) -> None:
    """A new session's cookie; the console's copy of any earlier one is forgotten (on a shared
    duty-room computer the next person must not find the last one's console)."""
    set_cookie(response, request, SESSION_COOKIE, token, max_age)
    clear_cookie(response, request, CONSOLE_COOKIE, CONSOLE_PATH)


def form_token(request: Request) -> str:
    """The double-submit token for a form shown before a session: the cookie's, or a new one
    (the caller sets it with :func:`set_cookie`)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 100 else secrets.token_urlsafe(24)


def double_submitted(request: Request, sent: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def refused_form(request: Request) -> str:
    """Why a form sent before a session (sign-in, a link's Open button) was refused: the
    browser kept none of the pages' cookies over plain HTTP (a Secure cookie is kept over
    HTTPS, and over http://localhost or a loopback address by Chromium and Firefox, never over
    plain HTTP to another host), or else the form expired."""
    s = settings_of(request)
    if (
        s.pages_cookie_secure
        and request.url.scheme == "http"
        and CSRF_COOKIE not in request.cookies
    ):
        return NO_COOKIES
    return EXPIRED


EXPIRED: Final = "页面已过期，请重试 The form expired; try again"
NO_COOKIES: Final = (
    "浏览器没有送回本页的 Cookie，无法登录：页面经明文 HTTP 打开，而登录 Cookie 只经 HTTPS 传送。"
    "请用 https:// 地址打开；本机试用可用 http://127.0.0.1 或 http://localhost"
    "（Chromium、Firefox）；只在可信网络上试用时，可由管理员设置"
    " SHOUWANG_PAGES_COOKIE_SECURE=false。"
    " The browser sent back no cookie for this page, so you cannot sign in: the page came over"
    " plain HTTP and its cookies go over HTTPS only (Secure). Open the https:// address; on this"
    " machine http://127.0.0.1 or http://localhost works (Chromium, Firefox); for a trial on a"
    " trusted network only, the operator may set SHOUWANG_PAGES_COOKIE_SECURE=false."
)


def same_token(expected: str, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(expected.encode(), sent.encode())


async def session(request: Request, db: AsyncConn) -> Session | None:
    return await session_of(db, request.cookies.get(SESSION_COOKIE))


@dataclass(frozen=True)
class StaffPrincipal(Principal):
    """A person signed in to the duty pages, as the JSON API's routes see a caller."""

    person_id: int = 0

    @property
    def actor(self) -> str:
        return f"{self.name} (duty pages, person {self.person_id})"


def principal_of(s: Session) -> StaffPrincipal:
    """A duty-room role over the person's firm's communities, or a maintenance unit's."""
    role = PAGE_ROLES[s.role]
    communities = s.firm_communities if role == "duty_staff" else frozenset()
    return StaffPrincipal(
        token_id=0,
        role=role,
        name=s.name,
        community_ids=communities,
        firm_id=s.firm_id if role == "duty_staff" else None,
        region_id=None,
        maintenance_unit_id=s.unit_id if role == "maintenance_unit" else None,
        person_id=s.person_id,
    )


def safe_next(url: str | None) -> str:
    """Where to go after signing in: a path of the duty pages only (never another site)."""
    if url and url.startswith("/duty") and "//" not in url and "\\" not in url:
        return url
    return "/duty"


def now() -> datetime:
    return datetime.now(UTC)
