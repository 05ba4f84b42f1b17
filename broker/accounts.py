"""Gateway: device and gateway MQTT accounts in the registry (issue, rotate, revoke, list)."""

from __future__ import annotations

from broker.acl import Account
from broker.credentials import hash_password, new_password
from core.db import Conn
from core.errors import RegistryError


def issue(conn: Conn, uid: str, *, password: str | None = None) -> str:
    """Issue (or replace) the credential of device or gateway ``uid``; return the new password.

    The username is the uid. The password is returned once and stored only hashed.
    """
    password = password or new_password()
    hashed = hash_password(password)
    row = conn.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()
    if row is not None:
        kind, dev_id, gw_id = "device", row[0], None
    else:
        row = conn.execute("SELECT id FROM gateways WHERE uid = %s", (uid,)).fetchone()
        if row is None:
            raise RegistryError(f"no device or gateway with uid {uid!r}; register it first")
        kind, dev_id, gw_id = "gateway", None, row[0]
    conn.execute(
        "INSERT INTO mqtt_accounts (username, kind, device_id, gateway_id, password_hash)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash,"
        " issued_at = now(), revoked_at = NULL",
        (uid, kind, dev_id, gw_id, hashed),
    )
    return password


def issue_many(conn: Conn, uids: list[str]) -> dict[str, str]:
    """Issue credentials for many devices at once (seeding); return uid -> password."""
    out: dict[str, str] = {}
    rows = []
    ids: dict[str, int] = dict(
        conn.execute("SELECT uid, id FROM devices WHERE uid = ANY(%s)", (uids,)).fetchall()
    )
    for uid in uids:
        if uid not in ids:
            raise RegistryError(f"no device with uid {uid!r}")
        out[uid] = new_password()
        rows.append((uid, ids[uid], hash_password(out[uid])))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO mqtt_accounts (username, kind, device_id, password_hash)"
            " VALUES (%s, 'device', %s, %s)"
            " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash,"
            " issued_at = now(), revoked_at = NULL",
            rows,
        )
    return out


def person_username(person_id: int) -> str:
    return f"duty-{person_id}"


def issue_person(conn: Conn, person_id: int, *, password: str | None = None) -> tuple[str, str]:
    """Issue (or replace) the broker credential of a person's duty app; return (username,
    password). The app reads its notifications on ``core.wire.duty_topic(username)``."""
    if conn.execute("SELECT 1 FROM people WHERE id = %s", (person_id,)).fetchone() is None:
        raise RegistryError(f"no person with id {person_id}")
    password = password or new_password()
    username = person_username(person_id)
    conn.execute(
        "INSERT INTO mqtt_accounts (username, kind, person_id, password_hash)"
        " VALUES (%s, 'person', %s, %s)"
        " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash,"
        " issued_at = now(), revoked_at = NULL",
        (username, person_id, hash_password(password)),
    )
    return username, password


def revoke(conn: Conn, uid: str) -> None:
    cur = conn.execute(
        "UPDATE mqtt_accounts SET revoked_at = now() WHERE username = %s AND revoked_at IS NULL",
        (uid,),
    )
    if cur.rowcount == 0:
        raise RegistryError(f"{uid!r} has no active credential to revoke")


def active_accounts(conn: Conn) -> list[Account]:
    rows = conn.execute(
        "SELECT a.username, a.kind, a.password_hash FROM mqtt_accounts a"
        " LEFT JOIN devices d ON d.id = a.device_id"
        " WHERE a.revoked_at IS NULL AND coalesce(d.active, true)"
    ).fetchall()
    return [Account(str(u), str(k), str(h)) for u, k, h in rows]
