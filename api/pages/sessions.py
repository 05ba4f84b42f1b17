"""API (duty pages): person logins, signing in and server-side sessions (I/O).

A session is a random cookie value whose SHA-256 is a row of ``page_sessions``; it carries its
own CSRF token (a synchronizer token, compared on every form) and, for a session opened from a
notification's link, the one alarm it may act on. Signing in counts failures per phone number
and per client address (``login_failures``): ``lockout_failures`` wrong passwords in a row lock
the login for a while, and too many failures within a window refuse further tries from that
number or address, whichever login they name. The password is checked (argon2: tens of
milliseconds, 64 MiB) between two short database steps, holding no connection, so a flood of
sign-ins cannot take the connections every other page needs. Every change here is in the audit log
(migration 0025): the caller names its actor on the connection (``api.deps.blocking``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from api.pages.passwords import (
    PasswordRule,
    check_password,
    hash_password,
    needs_rehash,
    phone_number,
    verify,
)
from core.db import Conn

# Person roles that sign in to the duty pages, and the API role each acts as.
PAGE_ROLES: Final = {
    "duty_staff": "duty_staff",
    "project_manager": "duty_staff",
    "firm_manager": "duty_staff",
    "maintenance_staff": "maintenance_unit",
}


@dataclass(frozen=True, slots=True)
class LoginLimits:
    lockout_failures: int
    lockout: timedelta
    per_phone: int
    per_client: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class Refusal:
    """A sign-in that did not succeed: the HTTP status to answer and why, in Chinese and English,
    never telling whether the phone number has a login."""

    status: int
    message: str


WRONG: Final = "手机号或密码不正确 Wrong phone number or password"


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    csrf: str
    person_id: int
    name: str
    role: str  # the person's roster role
    firm_id: int | None
    unit_id: int | None
    alarm_id: int | None  # a link's session: this alarm only
    expires_at: datetime
    firm_communities: frozenset[int] = frozenset()  # the person's firm's communities

    @property
    def full(self) -> bool:
        return self.alarm_id is None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Attempt:
    """A sign-in's phone number (as stored) and its login, read before the password is checked."""

    phone: str
    person_id: int | None
    password_hash: str | None
    locked_until: datetime | None
    role: str | None


async def attempt(
    db: psycopg.AsyncConnection[Any],
    raw_phone: str,
    client: str,
    limits: LoginLimits,
    now: datetime,
) -> Attempt | Refusal:
    """The login a sign-in names, or a refusal when the phone number or the client address has
    had too many failures within the window (one query; nothing recorded)."""
    try:
        phone = phone_number(raw_phone)
    except PasswordRule:
        phone = raw_phone.strip()[:40]
    since = now - limits.window
    cur = await db.execute(
        "SELECT (SELECT count(*) FROM login_failures WHERE client = %(client)s AND at > %(t)s),"
        " (SELECT count(*) FROM login_failures WHERE phone = %(phone)s AND at > %(t)s),"
        " l.person_id, l.password_hash, l.locked_until, p.role"
        " FROM (SELECT 1) AS one LEFT JOIN person_logins l ON l.phone = %(phone)s"
        " LEFT JOIN people p ON p.id = l.person_id AND p.active",
        {"client": client, "phone": phone, "t": since},
    )
    row = await cur.fetchone()
    assert row is not None  # one row, always
    by_client, by_phone, person_id, stored, locked_until, role = row
    if by_client >= limits.per_client or by_phone >= limits.per_phone:
        minutes = int(limits.window.total_seconds() // 60)
        return Refusal(
            429, f"尝试次数过多，请 {minutes} 分钟后再试 Too many tries; try again in {minutes} min"
        )
    if role is None:  # no login, or an inactive person
        person_id = stored = None
    return Attempt(phone, person_id, stored, locked_until, role)


def check(a: Attempt, password: str, now: datetime) -> int | Refusal:
    """The person, if the password is theirs and the login may sign in (pure, but argon2's
    tens of milliseconds: run it in a thread, holding no database connection). An unknown
    number takes as long and answers as a wrong password."""
    ok = verify(a.password_hash, password)
    if a.locked_until is not None and a.locked_until > now:
        return Refusal(
            423, "登录已锁定，请稍后再试或联系管理员 Login locked; try later or ask your admin"
        )
    if not ok or a.person_id is None or a.role not in PAGE_ROLES:
        return Refusal(401, WRONG)
    return int(a.person_id)


def record_failure(conn: Conn, a: Attempt, client: str, limits: LoginLimits, now: datetime) -> None:
    """Count the failure for the limits, and against the login for its lockout."""
    conn.execute(
        "INSERT INTO login_failures (at, phone, client) VALUES (%s, %s, %s)",
        (now, a.phone, client),
    )
    conn.execute(
        "UPDATE person_logins SET failures = failures + 1,"
        " locked_until = CASE WHEN failures + 1 >= %s THEN %s ELSE locked_until END"
        " WHERE phone = %s",
        (limits.lockout_failures, now + limits.lockout, a.phone),
    )


def record_success(conn: Conn, person_id: int, new_hash: str | None) -> None:
    """Clear the failures and lock; store ``new_hash`` (the password hashed with today's
    parameters) if the old hash was weaker."""
    conn.execute(
        "UPDATE person_logins SET failures = 0, locked_until = NULL"
        " WHERE person_id = %s AND (failures <> 0 OR locked_until IS NOT NULL)",
        (person_id,),
    )
    if new_hash is not None:
        conn.execute(
            "UPDATE person_logins SET password_hash = %s WHERE person_id = %s",
            (new_hash, person_id),
        )


def rehashed(a: Attempt, password: str) -> str | None:
    """The password hashed anew when its stored hash is weaker than today's (argon2's time)."""
    if a.password_hash is not None and needs_rehash(a.password_hash):
        return hash_password(password)
    return None


def open_session(
    conn: Conn,
    person_id: int,
    *,
    client: str,
    expires_at: datetime,
    alarm_id: int | None = None,
) -> str:
    """A new session; returns the cookie's value (kept nowhere else)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO page_sessions (token_hash, csrf_secret, person_id, via, alarm_id, client,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            digest(token),
            secrets.token_urlsafe(24),
            person_id,
            "password" if alarm_id is None else "link",
            alarm_id,
            client[:100],
            expires_at,
        ),
    )
    return token


def end_session(conn: Conn, session_id: int, now: datetime) -> None:
    conn.execute(
        "UPDATE page_sessions SET ended_at = %s WHERE id = %s AND ended_at IS NULL",
        (now, session_id),
    )


_SESSION_SQL: Final = (
    "SELECT s.id, s.csrf_secret, p.id, p.name, p.role, p.firm_id, p.unit_id, s.alarm_id,"
    " s.expires_at, ARRAY(SELECT c.id FROM communities c WHERE c.firm_id = p.firm_id)"
    " FROM page_sessions s JOIN people p ON p.id = s.person_id AND p.active"
    " WHERE s.token_hash = %s AND s.ended_at IS NULL AND s.expires_at > now()"
)


async def session_of(db: psycopg.AsyncConnection[Any], token: str | None) -> Session | None:
    """The live session behind a cookie's value, with the person's firm's communities, if any
    (one indexed query)."""
    if not token or len(token) > 200:
        return None
    cur = await db.execute(_SESSION_SQL, (digest(token),))
    row = await cur.fetchone()
    if row is None or row[4] not in PAGE_ROLES:
        return None
    sid, csrf, pid, name, role, firm, unit, alarm, expires, communities = row
    return Session(
        int(sid),
        str(csrf),
        int(pid),
        str(name),
        str(role),
        firm,
        unit,
        alarm,
        expires,
        frozenset(int(c) for c in communities),
    )


def set_password(conn: Conn, person_id: int, raw_phone: str, password: str, now: datetime) -> str:
    """Give a person (of a role that signs in) a phone number and password; their sessions end
    and any lock is lifted. Returns the stored phone number. Raises PasswordRule naming what
    to change."""
    phone = phone_number(raw_phone)
    check_password(password, phone)
    person = conn.execute(
        "SELECT role, active, firm_id, unit_id FROM people WHERE id = %s", (person_id,)
    ).fetchone()
    if person is None:
        raise PasswordRule("person", f"no person {person_id}")
    role, active, firm, unit = person
    if role not in PAGE_ROLES:
        raise PasswordRule(
            "person",
            f"a {role} does not sign in to the duty pages; logins are for: {', '.join(PAGE_ROLES)}",
        )
    if not active:
        raise PasswordRule("person", f"person {person_id} is inactive; make them active first")
    if (firm if PAGE_ROLES[role] == "duty_staff" else unit) is None:
        raise PasswordRule("person", f"person {person_id} belongs to no firm or maintenance unit")
    taken = conn.execute(
        "SELECT person_id FROM person_logins WHERE phone = %s AND person_id <> %s",
        (phone, person_id),
    ).fetchone()
    if taken is not None:
        raise PasswordRule("phone", f"phone number {phone} is already another person's login")
    with conn.transaction():
        conn.execute(
            "INSERT INTO person_logins (person_id, phone, password_hash, password_set_at)"
            " VALUES (%(p)s, %(phone)s, %(h)s, %(now)s) ON CONFLICT (person_id) DO UPDATE SET"
            " phone = excluded.phone, password_hash = excluded.password_hash,"
            " password_set_at = excluded.password_set_at, failures = 0, locked_until = NULL",
            {"p": person_id, "phone": phone, "h": hash_password(password), "now": now},
        )
        conn.execute(
            "UPDATE page_sessions SET ended_at = %s WHERE person_id = %s AND ended_at IS NULL",
            (now, person_id),
        )
    return phone
