"""API (community notice board): the public pages, no login (docs/pages.md).

``/board/{community code}``: the board the county plan asks of every community (公示栏), laid
out from a 360 px phone to a desktop; ``/board/{code}/print``: the same on one or two A4 pages,
with a QR code leading to the live page (``SHOUWANG_API_PUBLIC_URL``; the print page says so
when it is not set). Chinese first, English alongside; times in Beijing time. An unknown
community is a 404 page. Each client address may load ``BURST`` pages at once and ``RATE`` a
second after that (429 beyond), so nobody can keep the database busy through them.
"""

from __future__ import annotations

import math
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import conn
from api.fields import CODE_PATTERN
from api.pages import board_view
from api.pages.board_data import Board, board
from api.pages.web import client_of, now, settings_of, templates
from api.rate_limit import Buckets

router = APIRouter(prefix="/board", include_in_schema=False)

STATIC: Final = Path(__file__).parent / "static"
BURST: Final = 60
RATE: Final = 2.0  # pages a second per client address, after the burst
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=60",
}
connection: Final = asynccontextmanager(conn)  # a pooled connection, as the routes' Db
_SHEETS: Final = frozenset({"board.css", "board-print.css"})


def _buckets(request: Request) -> Buckets:
    state = request.app.state
    buckets: Buckets | None = getattr(state, "board_buckets", None)
    if buckets is None:
        buckets = state.board_buckets = Buckets(RATE, BURST)
    return buckets


def _page(template: str, status: int = 200, **context: object) -> HTMLResponse:
    html = templates().get_template(template).render(v=board_view, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _throttled(request: Request) -> HTMLResponse | None:
    wait = _buckets(request).take(client_of(request), time.monotonic())
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    response = _page(
        "board_message.html",
        429,
        title="请稍后再试 Too many requests",
        text=(
            f"本地址请求过于频繁，请 {seconds} 秒后再试。"
            f" Too many pages from this address; try again in {seconds} s."
        ),
    )
    response.headers["Retry-After"] = str(seconds)
    return response


async def _board(request: Request, code: str) -> Board | HTMLResponse:
    """The board of ``code``, or the page saying why not; a refused client takes no database
    connection."""
    refused = _throttled(request)
    if refused is not None:
        return refused
    found = None
    if re.fullmatch(CODE_PATTERN, code) and len(code) <= 64:
        async with connection(request) as db:
            found = await board(db, code, now())
    if found is None:
        return _page(
            "board_message.html",
            404,
            title="没有这个小区 No such community",
            text=f"没有编号为 {code} 的小区。 There is no community with the code {code}.",
        )
    return found


@router.get("/static/{name}")
async def stylesheet(name: str) -> Response:
    if name not in _SHEETS:
        return Response(status_code=404, headers=HEADERS)
    text = (STATIC / name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(text, media_type="text/css", headers=headers)


@router.get("/{code}")
async def live(request: Request, code: str) -> HTMLResponse:
    """The notice board, for any screen."""
    b = await _board(request, code)
    if isinstance(b, HTMLResponse):
        return b
    return _page(
        "board.html",
        b=b,
        print_path=board_view.page_path(b.code) + "/print",
        complaint_path=board_view.page_path(b.code) + "/complaint",
    )


@router.get("/{code}/print")
async def printable(request: Request, code: str) -> HTMLResponse:
    """The notice board on A4, with a QR code of the live page's address."""
    b = await _board(request, code)
    if isinstance(b, HTMLResponse):
        return b
    url = board_view.live_url(settings_of(request).api_public_url, b.code)
    qr = None if url is None else board_view.qr_svg(url)
    return _page("board_print.html", b=b, url=url, qr=qr)
