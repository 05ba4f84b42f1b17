"""API: the acknowledgement link in a notification (no login: the signed token is the credential).

``GET /v1/ack/{token}`` shows what the alarm is and a button; only ``POST`` acknowledges, so a
chat app or mail scanner that fetches links to preview them cannot use up the single-use token.
Both answer a small HTML page in Chinese and English for a person on a phone, or JSON when the
client asks for it (``Accept: application/json``). A browser following a link made out to a
roster person, or posted to a group, is sent on to the duty pages (``api.pages.signin``); a
group's link acknowledges nothing by itself: whoever follows it signs in.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.deps import Db, act, blocking
from api.errors import ERROR_RESPONSES, ApiError
from core.audit import Actor
from core.db import Conn
from lifecycle.acknowledge import AckError, AckToken, acknowledge, read_token

router = APIRouter(tags=["acknowledgement"], responses=ERROR_RESPONSES)

_ALARM_SQL = (
    "SELECT a.event_code, a.severity, a.state, a.opened_at, a.acknowledged_by, d.uid, c.name_zh,"
    " coalesce(b.name, '') FROM alarms a JOIN devices d ON d.id = a.device_id"
    " JOIN communities c ON c.id = d.community_id LEFT JOIN buildings b ON b.id = d.building_id"
    " WHERE a.id = %s"
)


def _token(request: Request, token: str) -> AckToken:
    secret = request.app.state.settings.notify_ack_secret.get_secret_value()
    if not secret:
        raise ApiError(404, "not_found", "acknowledgement links are not enabled on this platform")
    try:
        return read_token(secret, token, now=time.time())
    except AckError as e:
        raise ApiError(410 if "expired" in str(e) else 400, "invalid_link", str(e)) from None


def _page(title: str, lines: list[str], form: bool = False) -> HTMLResponse:
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    button = (
        '<form method="post"><button type="submit" style="font-size:1.4em;padding:.5em 2em">'
        "确认接警 Acknowledge</button></form>"
        if form
        else ""
    )
    return HTMLResponse(
        f'<!doctype html><html lang="zh"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}{button}</body></html>"
    )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def _alarm(db: Db, alarm_id: int) -> dict[str, Any]:
    cur = await db.execute(_ALARM_SQL, (alarm_id,))
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "not_found", "this alarm no longer exists")
    code, severity, state, opened, by, uid, community, building = row
    return {
        "alarm_id": alarm_id,
        "event_code": code,
        "severity": severity,
        "state": state,
        "opened_at": opened.isoformat(),
        "acknowledged_by": by,
        "device": uid,
        "community": community,
        "building": building,
    }


def _describe(a: dict[str, Any]) -> list[str]:
    return [
        f"[{a['severity']}] {a['event_code']}",
        f"{a['community']} {a['building']} {a['device']}".strip(),
        f"发生 Since: {a['opened_at']}",
    ]


@router.get("/v1/ack/{token}", response_model=None, summary="Show an acknowledgement link")
async def show(request: Request, token: str, db: Db) -> Response:
    t = _token(request, token)
    if t.person_id is not None and not _wants_json(request):
        return RedirectResponse(f"/duty/link/{token}", status_code=303)
    a = await _alarm(db, t.alarm_id)
    if _wants_json(request):
        return JSONResponse({**a, "person": t.person})
    open_ = a["state"] == "active"
    status = "请确认 Please acknowledge" if open_ else f"状态 State: {a['state']}"
    return _page("告警确认 Acknowledge alarm", [*_describe(a), f"{t.person}", status], form=open_)


@router.post("/v1/ack/{token}", response_model=None, summary="Acknowledge by link")
async def use(request: Request, token: str, db: Db) -> Response:
    t = _token(request, token)
    if t.for_group:
        raise ApiError(
            401,
            "sign_in_required",
            "a link posted to a group acknowledges nothing by itself; sign in on the duty pages"
            f" (/duty/login?next=/duty/alarms/{t.alarm_id})",
        )
    await _alarm(db, t.alarm_id)

    def ack(conn: Conn) -> None:
        acknowledge(conn, t.alarm_id, actor=t.person, at=datetime.now(UTC), token_id=t.token_id)

    act(request, Actor(f"{t.person} (acknowledgement link)", "api"))
    try:
        await blocking(request, ack)
    except AckError as e:
        raise ApiError(409, "not_acknowledged", str(e)) from None
    a = await _alarm(db, t.alarm_id)
    if _wants_json(request):
        return JSONResponse({**a, "person": t.person})
    return _page("已确认 Acknowledged", [*_describe(a), f"确认人 By: {a['acknowledged_by']}"])
