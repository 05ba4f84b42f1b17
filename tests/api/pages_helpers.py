"""Helpers of the duty pages' tests: people with logins and shifts, and a client that signs in
and posts forms as a browser does (cookies, the forms' CSRF tokens)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal

from api.pages.sessions import set_password
from core.db import Conn
from core.settings import Settings
from tests.api.conftest import serving

PASSWORD = "duty-page-pass-1"
# Page settings for tests: plain HTTP in-process, generous address limits (all tests come from
# one address) unless a test sets its own.
PAGE_SETTINGS: dict[str, Any] = {
    "pages_cookie_secure": False,
    "pages_failures_per_client": 1000,
    "pages_failures_per_phone": 1000,
}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Staff:
    id: int
    name: str
    phone: str


def add_staff(
    db: Conn,
    name: str,
    phone: str,
    *,
    role: str = "duty_staff",
    firm_id: int | None = None,
    unit_id: int | None = None,
    shift_community: int | None = None,
) -> Staff:
    """A person with a page login (and a shift now for the community, if given)."""
    row = db.execute(
        "INSERT INTO people (name, role, firm_id, unit_id) VALUES (%s, %s, %s, %s) RETURNING id",
        (name, role, firm_id, unit_id),
    ).fetchone()
    assert row is not None
    pid = int(row[0])
    set_password(db, pid, phone, PASSWORD, datetime.now(UTC))
    if shift_community is not None:
        now = datetime.now(UTC)
        db.execute(
            "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (shift_community, role, pid, now - timedelta(hours=1), now + timedelta(hours=8)),
        )
    return Staff(pid, name, phone)


class Pages:
    """The app in-process, called as one browser (one cookie jar)."""

    def __init__(self, portal: Any, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self.client = client

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self._portal.call(lambda: self.client.request(method, url, **kw))  # type: ignore[no-any-return]

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def reset(self) -> None:
        self.client.cookies.clear()

    def csrf(self, url: str) -> str:
        """The CSRF token of the form on the page at ``url``."""
        page = self.get(url)
        found = _CSRF.search(page.text)
        assert found, (url, page.status_code, page.text[:300])
        return found.group(1)

    def sign_in(self, phone: str, password: str = PASSWORD, **form: str) -> httpx.Response:
        token = self.csrf("/duty/login")
        return self.post(
            "/duty/login", data={"phone": phone, "password": password, "csrf": token, **form}
        )

    def act(self, alarm_id: int, step: str, **kw: Any) -> httpx.Response:
        token = self.csrf(f"/duty/alarms/{alarm_id}")
        data = {"csrf": token, **kw.pop("data", {})}
        return self.post(f"/duty/alarms/{alarm_id}/{step}", data=data, **kw)


@contextmanager
def pages(settings: Settings) -> Iterator[Pages]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serving(settings)) as client,
    ):
        yield Pages(portal, client)
