"""API: a site's gateway, for the property firm that runs the site: its state as it last reported
it, its pushed configs and their answers, a new config pushed to it, and a state request.

Only the firm's own tokens (``firm_admin`` of the firm running the gateway's community) reach a
gateway; any other firm's get 404, as for a gateway that does not exist. A pushed config is checked
as ``shouwang gateway check`` checks it and against the networks the gateway's registration
declares, recorded as the gateway's next version, and sent on its command subtree (wire contract
revision 5, ``broker/site_configs.py``); the gateway's answer (applied, or refused with its
problems) shows in the config's ``state`` once it arrives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import Caller, Principal, blocking
from api.errors import (
    ERROR_RESPONSES,
    RAW_BODY_RESPONSES,
    ApiError,
    FieldError,
    documented,
    not_found,
)
from api.fields import Uid
from api.scope import Action, require
from api.yaml_body import BODY, yaml_text
from broker.site_configs import (
    Pushed,
    PushRefused,
    Registration,
    configs,
    record_push,
    registration,
    send_push,
    send_state_request,
    target_of,
)
from core.db import Conn
from core.errors import ServiceUnavailable
from core.settings import Settings

router = APIRouter(tags=["gateways"], responses=ERROR_RESPONSES)


class GatewayConfig(BaseModel):
    version: int
    pushed_at: datetime
    pushed_by: str
    state: str  # pushed | applied | refused
    errors: list[str]
    answered_at: datetime | None
    networks: list[str]


class ReportedState(BaseModel):
    ts: datetime
    received_at: datetime
    online: bool
    reason: str
    buffer_entries: int | None
    buffer_bytes: int | None
    buffer_max_bytes: int | None
    dropped: int | None
    clock_offset_ms: int | None
    devices: int | None
    devices_online: int | None
    config_version: int | None


class Gateway(BaseModel):
    uid: str
    networks: list[str]
    state: ReportedState | None
    configs: list[GatewayConfig]


class PushAccepted(BaseModel):
    uid: str
    version: int
    pushed_at: datetime
    state: str


class StateAsked(BaseModel):
    uid: str
    asked_at_ms: int


def _mine(c: Conn, p: Principal, uid: str) -> Registration:
    reg = registration(c, uid, firm_id=p.firm_id)
    if reg is None or p.firm_id is None:
        raise not_found("gateway")
    return reg


def _state(c: Conn, gateway_id: int) -> ReportedState | None:
    cur = c.execute(
        "SELECT ts, received_at, online, reason, buffer_entries, buffer_bytes, buffer_max_bytes,"
        " dropped, clock_offset_ms, devices, devices_online, config_version"
        " FROM gateway_state WHERE gateway_id = %s",
        (gateway_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    assert cur.description is not None
    return ReportedState(**dict(zip([d.name for d in cur.description], row, strict=True)))


@router.get("/gateways/{uid}")
async def get_gateway(request: Request, p: Caller, uid: Uid) -> Gateway:
    """The gateway's declared networks, its last reported state and its recent configs."""
    require(p, Action.CONFIGURE_GATEWAYS)

    def run(c: Conn) -> Gateway:
        reg = _mine(c, p, uid)
        return Gateway(
            uid=reg.uid,
            networks=reg.networks,
            state=_state(c, reg.id),
            configs=[GatewayConfig(**r) for r in configs(c, reg.id)],
        )

    return await blocking(request, run)


@router.post(
    "/gateways/{uid}/configs",
    status_code=202,
    openapi_extra=BODY,
    responses=RAW_BODY_RESPONSES | documented(503),
)
async def push_config(request: Request, p: Caller, uid: Uid) -> PushAccepted:
    """Push a site config (YAML) to the gateway. A config with problems is refused (422) with
    all of them; an accepted one becomes the gateway's next version and is sent (202): its
    ``state`` turns ``applied`` or ``refused`` when the gateway answers."""
    require(p, Action.CONFIGURE_GATEWAYS)
    text = await yaml_text(request, "a site config")
    settings: Settings = request.app.state.settings

    def record(c: Conn) -> Pushed:
        reg = _mine(c, p, uid)
        try:
            return record_push(c, reg, text.encode(), p.actor)
        except PushRefused as e:
            fields = [FieldError(field="body", message=m) for m in e.errors]
            raise ApiError(
                422, "invalid_config", f"{len(e.errors)} problem(s) in the config", fields
            ) from None

    pushed = await blocking(request, record)
    try:
        await anyio.to_thread.run_sync(send_push, target_of(settings), pushed)
    except ServiceUnavailable as e:

        def withdraw(c: Conn) -> None:
            c.execute(
                "DELETE FROM gateway_configs WHERE version = %s"
                " AND gateway_id = (SELECT id FROM gateways WHERE uid = %s)",
                (pushed.version, pushed.gateway),
            )

        await blocking(request, withdraw)
        raise ApiError(503, "broker_unavailable", f"{e}; the config was not pushed") from None
    return PushAccepted(uid=uid, version=pushed.version, pushed_at=pushed.pushed_at, state="pushed")


@router.get("/gateways/{uid}/configs")
async def list_configs(request: Request, p: Caller, uid: Uid) -> list[GatewayConfig]:
    """The configs pushed to the gateway, newest first (at most 20), with its answers."""
    require(p, Action.CONFIGURE_GATEWAYS)

    def run(c: Conn) -> list[dict[str, Any]]:
        return configs(c, _mine(c, p, uid).id)

    return [GatewayConfig(**r) for r in await blocking(request, run)]


@router.post("/gateways/{uid}/state-request", status_code=202, responses=documented(503))
async def ask_state(request: Request, p: Caller, uid: Uid) -> StateAsked:
    """Ask the gateway to report its state now; it shows in ``GET /v1/gateways/{uid}`` once
    the gateway has answered (its status, stored by ingest)."""
    require(p, Action.CONFIGURE_GATEWAYS)
    await blocking(request, lambda c: _mine(c, p, uid))
    settings: Settings = request.app.state.settings
    try:
        at = await anyio.to_thread.run_sync(send_state_request, target_of(settings), uid)
    except ServiceUnavailable as e:
        raise ApiError(503, "broker_unavailable", str(e)) from None
    return StateAsked(uid=uid, asked_at_ms=at)
