"""API: request limits, so that no caller, signed in or not, can exhaust the API.

* :class:`BodyLimit`, a pure ASGI middleware in front of everything else: a request body above
  the limit (``api_max_body_bytes``; ``api_max_upload_bytes`` for the upload routes in
  :data:`UPLOADS`) is refused with ``413 too_large``: at once when its ``Content-Length`` says so,
  else (chunked) the moment the bytes read pass the limit, with nothing more read. A write
  (POST, PUT, PATCH, DELETE) carrying a body but no bearer token is refused with
  ``401 unauthorized`` before its body is read (FastAPI reads and parses a body before it runs
  a route's dependencies, the authentication among them), except on the routes that need no
  token (:data:`ANONYMOUS_WRITES`: acknowledgement links, the duty pages).
* :func:`throttle`: each token's writes through a token bucket (``api_write_burst`` at once,
  ``api_write_rate_per_s`` refilled), ``429 rate_limited`` with ``Retry-After`` beyond it.

Both answer the API's error body (``api/errors.py``), naming the limit and its setting. The
live stream's caps are the hub's (``api/stream.py``). Every limit holds per API process.
"""

from __future__ import annotations

import math
import re
import time
from typing import Final

from fastapi import FastAPI, Request
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, FieldError, body
from api.rate_limit import Buckets
from core.settings import Settings

# The routes that take a file (CSV, YAML) and so the larger limit; tests/api/test_limits.py
# checks this against the routes documenting a raw body.
UPLOADS: Final = frozenset(
    {
        "/v1/devices/import",
        "/v1/responsibility-list",
        "/v1/responsibility-list/validate",
        "/v1/calendar/schedules",
        "/v1/calendar/schedules/validate",
    }
)
# Routes taking a raw body (a file) that stays under the ordinary body limit: a pushed site config
# is at most 1 MiB (broker/site_configs.py), so it gets no larger allowance.
RAW_BODIES: Final = frozenset({"/v1/gateways/{uid}/configs"})
# The writes that need no API token: acknowledgement links (the signed link is the credential)
# and the duty pages (a session cookie and a CSRF token, api/pages), and residents' complaint
# form (a CSRF cookie and the abuse limits of api/pages/complaints.py).
ANONYMOUS_WRITES: Final = re.compile(r"/v1/ack/[^/]+|/duty/[^?]*|/board/[^/?]+/complaint")
# The pages' routes taking a photo: the upload limit, then the page's own photo limit.
PAGE_UPLOADS: Final = re.compile(r"/duty/alarms/[0-9]+/arrive|/board/[^/?]+/complaint")
WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DISCONNECT: Final[Message] = {"type": "http.disconnect"}


async def _answer(e: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """The error body, on a connection closed afterwards: the body it came with is unread."""
    response = body(e.status, e.code, e.message, e.fields)
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    def _too_large(self, upload: bool) -> ApiError:
        limit = self.max_upload if upload else self.max_body
        setting = "SHOUWANG_API_MAX_UPLOAD_BYTES" if upload else "SHOUWANG_API_MAX_BODY_BYTES"
        what = "an upload" if upload else "a request body"
        return ApiError(
            413,
            "too_large",
            f"{what} is at most {limit} bytes on this API ({setting}); send less",
            [FieldError(field="body", message=f"more than {limit} bytes")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = bearer = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None  # counted as it comes
                    chunked = True
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                bearer = value[:7].lower() == b"bearer "
        if not chunked and not length:  # no body: nothing to limit
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        upload = path in UPLOADS or PAGE_UPLOADS.fullmatch(path) is not None
        limit = self.max_upload if upload else self.max_body
        if length is not None and length > limit:
            await _answer(self._too_large(upload), scope, receive, send)
            return
        if scope["method"] in WRITES and not bearer and not ANONYMOUS_WRITES.fullmatch(path):
            message = "send 'Authorization: Bearer <API token>'"
            await _answer(ApiError(401, "unauthorized", message), scope, receive, send)
            return

        read = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal read, refused
            if refused:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    refused = True
                    if not started:
                        await _answer(self._too_large(upload), scope, receive, send)
                    return _DISCONNECT  # the app stops reading; what it answers is dropped
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except ClientDisconnect:
            if not refused:  # a real disconnect
                raise


def throttle(request: Request, token_id: int) -> None:
    """Take one write from the token's bucket; ``429 rate_limited`` with ``Retry-After`` when it
    is empty."""
    buckets: Buckets | None = getattr(request.app.state, "write_buckets", None)
    if buckets is None:
        return
    wait = buckets.take(token_id, time.monotonic())
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"this token may make {buckets.burst} writes at once and {buckets.rate:g} a second"
            " after that (SHOUWANG_API_WRITE_BURST, SHOUWANG_API_WRITE_RATE_PER_S);"
            f" try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


def install(app: FastAPI, settings: Settings) -> None:
    """The body limit in front of the app, and the write buckets its routes take from."""
    app.add_middleware(
        BodyLimit, max_body=settings.api_max_body_bytes, max_upload=settings.api_max_upload_bytes
    )
    app.state.write_buckets = Buckets(settings.api_write_rate_per_s, settings.api_write_burst)
