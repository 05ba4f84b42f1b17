"""API: a device's MQTT credential: issue or rotate (the password is shown once), revoke.

The registry holds only the hash; the broker's password file and ACL follow at once (the
gateway's sync, as ``shouwang broker issue/revoke`` does), without a broker restart.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from psycopg import sql
from pydantic import BaseModel

from api import scope
from api.broker import BrokerSync, sync_broker
from api.deps import Caller, Db, Principal, blocking
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.fields import Uid
from api.queries import fetch_one
from api.routes.devices import find
from api.scope import Action, Where, require
from broker import accounts
from core.db import Conn
from core.errors import AccountConflict, RegistryError

router = APIRouter(tags=["devices"], responses=ERROR_RESPONSES)


class Credential(BaseModel):
    uid: str
    username: str
    issued_at: datetime | None
    revoked_at: datetime | None
    active: bool


class BrokerState(BaseModel):
    synced: bool
    detail: str


class IssuedCredential(BaseModel):
    uid: str
    username: str
    password: str  # shown this once; the registry keeps only its hash
    issued_at: datetime
    broker: BrokerState


class RevokedCredential(BaseModel):
    uid: str
    revoked_at: datetime
    broker: BrokerState


@router.get("/devices/{uid}/credentials")
async def get_credential(db: Db, p: Caller, uid: Uid) -> Credential:
    require(p, Action.READ_COMMUNITIES)
    dev = await find(db, p, uid)
    row = await fetch_one(
        db,
        Credential,
        "SELECT %(uid)s AS uid, %(uid)s AS username, issued_at, revoked_at,"
        " revoked_at IS NULL AS active FROM mqtt_accounts WHERE device_id = %(id)s",
        {"uid": uid, "id": dev.id},
    )
    return row or Credential(uid=uid, username=uid, issued_at=None, revoked_at=None, active=False)


def _lock_device(c: Conn, p: Principal, uid: str, *, active: bool = True) -> int:
    """Lock the device row for this transaction, inside the caller's scope."""
    w = scope.communities(Where().add("d.uid = %(uid)s", uid=uid), p, "d.community_id")
    q = sql.SQL("SELECT d.id, d.active FROM devices d WHERE ") + w.sql() + sql.SQL(" FOR UPDATE")
    row = c.execute(q, w.params).fetchone()
    if row is None:
        raise not_found("device")
    if active and not row[1]:
        raise ApiError(409, "inactive", f"device {uid} is decommissioned; reactivate it first")
    return int(row[0])


@router.post("/devices/{uid}/credentials", status_code=201)
async def issue_credential(request: Request, p: Caller, uid: Uid) -> IssuedCredential:
    """Issue the device's credential, or rotate it: the old password stops working."""
    require(p, Action.WRITE_DEVICES)
    settings = request.app.state.settings

    def run(c: Conn) -> tuple[str, datetime, BrokerSync]:
        _lock_device(c, p, uid)
        try:
            password = accounts.issue(c, uid)
        except AccountConflict as e:
            raise ApiError(409, "account_conflict", str(e)) from None
        row = c.execute(
            "SELECT issued_at FROM mqtt_accounts WHERE username = %s", (uid,)
        ).fetchone()
        assert row is not None
        return password, row[0], sync_broker(c, settings)

    password, issued_at, broker = await blocking(request, run)
    return IssuedCredential(
        uid=uid,
        username=uid,
        password=password,
        issued_at=issued_at,
        broker=BrokerState(synced=broker.synced, detail=broker.detail),
    )


@router.delete("/devices/{uid}/credentials")
async def revoke_credential(request: Request, p: Caller, uid: Uid) -> RevokedCredential:
    """Revoke the credential: the broker refuses it from now on and disconnects the device."""
    require(p, Action.WRITE_DEVICES)
    settings = request.app.state.settings

    def run(c: Conn) -> tuple[datetime, BrokerSync]:
        _lock_device(c, p, uid, active=False)
        try:
            accounts.revoke(c, uid)
        except RegistryError as e:
            raise ApiError(409, "not_issued", str(e)) from None
        row = c.execute(
            "SELECT revoked_at FROM mqtt_accounts WHERE username = %s", (uid,)
        ).fetchone()
        assert row is not None
        return row[0], sync_broker(c, settings)

    revoked_at, broker = await blocking(request, run)
    return RevokedCredential(
        uid=uid,
        revoked_at=revoked_at,
        broker=BrokerState(synced=broker.synced, detail=broker.detail),
    )
