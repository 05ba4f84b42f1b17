"""API: ``POST /v1/devices/import``: register many devices from a CSV, all or nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from api import device_csv
from api.broker import BrokerSync, sync_broker
from api.deps import Caller, Principal, blocking
from api.errors import ERROR_RESPONSES, RAW_BODY_RESPONSES, ApiError, FieldError
from api.routes.credentials import BrokerState
from api.scope import Action, require
from broker.accounts import issue_many
from core.db import Conn
from core.errors import AccountConflict

router = APIRouter(tags=["devices"], responses=ERROR_RESPONSES)


class Imported(BaseModel):
    imported: int
    uids: list[str]
    passwords: dict[str, str] | None  # uid -> password, shown once, with issue_credentials
    broker: BrokerState | None


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


async def _text(request: Request) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=5) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(
                    422,
                    "invalid",
                    "attach the CSV as the form field 'file'",
                    [FieldError(field="body.file", message="required")],
                )
            raw = await upload.read()  # the body is at most SHOUWANG_API_MAX_UPLOAD_BYTES
    elif kind in ("text/csv", "text/plain", "application/csv"):
        raw = await request.body()
    else:
        raise ApiError(415, "unsupported_media_type", "send text/csv, or multipart with 'file'")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the CSV is not UTF-8 text; save it as UTF-8") from None


def _known(c: Conn, p: Principal, uids: list[str]) -> device_csv.Known:
    ids = None if p.community_ids is None else sorted(p.community_ids)
    communities: dict[str, int] = dict(
        c.execute(
            "SELECT code, id FROM communities WHERE %(ids)s::int[] IS NULL OR id = ANY(%(ids)s)",
            {"ids": ids},
        ).fetchall()
    )
    scoped = list(communities.values())
    buildings = {
        (int(cid), str(code)): int(bid)
        for bid, cid, code in c.execute(
            "SELECT id, community_id, code FROM buildings WHERE community_id = ANY(%s)", (scoped,)
        )
    }
    gateways = {
        str(uid): (int(gid), int(cid))
        for gid, uid, cid in c.execute(
            "SELECT id, uid, community_id FROM gateways WHERE community_id = ANY(%s)", (scoped,)
        )
    }
    units: dict[str, int] = dict(c.execute("SELECT code, id FROM maintenance_units").fetchall())
    taken = {r[0] for r in c.execute("SELECT uid FROM devices WHERE uid = ANY(%s)", (uids,))}
    return device_csv.Known(communities, buildings, units, gateways, frozenset(taken))


def _refuse(problems: list[device_csv.Problem]) -> ApiError:
    fields = [
        FieldError(field=f"row {p.row}.{p.field}", row=p.row, message=p.message) for p in problems
    ]
    rows = len({p.row for p in problems})
    return ApiError(
        422,
        "invalid_csv",
        f"{len(problems)} problem(s) on {rows} row(s); nothing was imported",
        fields,
    )


@router.post("/devices/import", status_code=201, openapi_extra=_BODY, responses=RAW_BODY_RESPONSES)
async def import_devices(
    request: Request,
    p: Caller,
    issue_credentials: Annotated[
        bool, Query(description="also issue each device's MQTT credential (shown once)")
    ] = False,
) -> Imported:
    """Columns: uid, device_class, community (code) required; building (code), location,
    model, maintenance_unit (code), gateway (uid), install_date (YYYY-MM-DD),
    report_interval_s, attributes (JSON object) optional. Every row is checked; any problem
    refuses the whole file, listing each problem with its row (the header is row 1). The file
    is at most ``SHOUWANG_API_MAX_UPLOAD_BYTES`` (16 MiB; 413 beyond) and 10,000 devices."""
    require(p, Action.WRITE_DEVICES)
    rows, problems = device_csv.read(await _text(request))
    if problems:
        raise _refuse(problems)
    settings = request.app.state.settings

    def run(c: Conn) -> tuple[list[str], dict[str, str] | None, BrokerSync | None]:
        c.execute("LOCK TABLE devices IN SHARE ROW EXCLUSIVE MODE")  # uids stay free until commit
        known = _known(c, p, [r.get("uid", "") for _, r in rows])
        devices, problems = device_csv.check(rows, known)
        if problems:
            raise _refuse(problems)
        with c.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (uid, device_class, model, community_id, building_id,"
                " location, maintenance_unit_id, gateway_id, install_date, report_interval_s,"
                " attributes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        d.uid,
                        d.device_class,
                        d.model,
                        d.community_id,
                        d.building_id,
                        d.location,
                        d.maintenance_unit_id,
                        d.gateway_id,
                        d.install_date,
                        d.report_interval_s,
                        Jsonb(d.attributes),
                    )
                    for d in devices
                ],
            )
        uids = [d.uid for d in devices]
        if not issue_credentials:
            return uids, None, None
        try:
            passwords = issue_many(c, [d.uid for d in devices if d.gateway_id is None])
        except AccountConflict as e:  # nothing is imported: the transaction rolls back
            raise ApiError(409, "account_conflict", f"{e}; nothing was imported") from None
        return uids, passwords, sync_broker(c, settings)

    uids, passwords, broker = await blocking(request, run)
    return Imported(
        imported=len(uids),
        uids=uids,
        passwords=passwords,
        broker=None if broker is None else BrokerState(synced=broker.synced, detail=broker.detail),
    )
