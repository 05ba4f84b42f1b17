"""Gateway: device and gateway MQTT accounts in the registry (issue, rotate, revoke, list)."""

from __future__ import annotations

from broker.acl import Account
from broker.credentials import hash_password, new_password
from core.db import Conn
from core.errors import AccountConflict, RegistryError
from core.namespaces import PERSON_PREFIX, uid_problem

# Issue or rotate: username, kind, device id, gateway id, person id, hash. An existing account
# is updated only when it is the same kind's and the same owner's: a credential never takes over
# another account (the ON CONFLICT ... WHERE updates nothing then, and nothing is returned).
_UPSERT = (
    "INSERT INTO mqtt_accounts (username, kind, device_id, gateway_id, person_id, password_hash)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash,"
    " issued_at = now(), revoked_at = NULL"
    " WHERE mqtt_accounts.kind = excluded.kind"
    " AND mqtt_accounts.device_id IS NOT DISTINCT FROM excluded.device_id"
    " AND mqtt_accounts.gateway_id IS NOT DISTINCT FROM excluded.gateway_id"
    " AND mqtt_accounts.person_id IS NOT DISTINCT FROM excluded.person_id"
    " RETURNING username"
)


def _conflict(username: str, kind: str) -> AccountConflict:
    return AccountConflict(
        f"the broker username {username!r} already belongs to another account; a {kind}'s"
        " credential cannot take it over"
    )


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
    if (problem := uid_problem(uid)) is not None:
        raise AccountConflict(f"{kind} {uid!r} cannot have a broker credential: {problem}")
    done = conn.execute(_UPSERT, (uid, kind, dev_id, gw_id, None, hashed)).fetchone()
    if done is None:
        raise _conflict(uid, kind)
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
        if (problem := uid_problem(uid)) is not None:
            raise AccountConflict(f"device {uid!r} cannot have a broker credential: {problem}")
    taken = conn.execute(
        "SELECT a.username FROM mqtt_accounts a JOIN unnest(%s::text[], %s::int[]) AS w (u, d)"
        " ON a.username = w.u WHERE a.kind <> 'device' OR a.device_id IS DISTINCT FROM w.d"
        " ORDER BY 1 LIMIT 5",
        (uids, [ids[u] for u in uids]),
    ).fetchall()
    if taken:
        raise _conflict(", ".join(str(t[0]) for t in taken), "device")
    for uid in uids:
        out[uid] = new_password()
        rows.append((uid, "device", ids[uid], None, None, hash_password(out[uid])))
    with conn.cursor() as cur:
        cur.executemany(_UPSERT, rows)
    return out


def person_username(person_id: int) -> str:
    return f"{PERSON_PREFIX}{person_id}"


def issue_person(conn: Conn, person_id: int, *, password: str | None = None) -> tuple[str, str]:
    """Issue (or replace) the broker credential of a person's duty app; return (username,
    password). The app reads its notifications on ``core.wire.duty_topic(username)``."""
    if conn.execute("SELECT 1 FROM people WHERE id = %s", (person_id,)).fetchone() is None:
        raise RegistryError(f"no person with id {person_id}")
    password = password or new_password()
    username = person_username(person_id)
    hashed = hash_password(password)
    done = conn.execute(_UPSERT, (username, "person", None, None, person_id, hashed)).fetchone()
    if done is None:
        raise _conflict(username, "person")
    return username, password


def revoke(conn: Conn, uid: str) -> None:
    """Revoke the credential of device or gateway ``uid`` (never another kind's account)."""
    cur = conn.execute(
        "UPDATE mqtt_accounts SET revoked_at = now() WHERE username = %s AND revoked_at IS NULL"
        " AND kind IN ('device', 'gateway')",
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
