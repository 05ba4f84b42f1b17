"""The hot lists (`/v1/telemetry/latest`, `/v1/alarms`) write their JSON straight from the rows
(``api.fastjson``): byte for byte what their pydantic response models wrote before, pages and
cursors included."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from api.pagination import Page, encode_cursor, page
from api.routes.alarms import _SELECT as ALARM_SELECT
from api.routes.alarms import Alarm
from api.routes.telemetry import DeviceLatest, Reading
from core.db import Conn
from tests.api.conftest import Api, Ids, make_alarm

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
# Values whose JSON spelling differs between serialisers if any does: integral, tiny, huge,
# negative zero, many digits; times with and without microseconds.
VALUES = [11.0, 1e-7, 1.5e16, -0.0, 0.1 + 0.2, 123456.789]


class _Head(BaseModel):
    device_id: int
    uid: str
    device_class: str
    community_id: int
    last_seen: datetime | None
    online: bool | None


class _Latest(Reading):
    device_id: int


def old_latest(db: Conn, community_id: int, limit: int, after: int) -> bytes:
    """The page as the pydantic implementation wrote it (its queries and models, unchanged)."""
    with db.cursor(row_factory=class_row(_Head)) as cur:
        heads = cur.execute(
            "SELECT d.id AS device_id, d.uid, d.device_class, d.community_id, pr.last_seen,"
            " pr.online FROM devices d LEFT JOIN device_presence pr ON pr.device_id = d.id"
            " WHERE d.active AND d.community_id = %s AND d.id > %s ORDER BY d.id LIMIT %s",
            (community_id, after, limit + 1),
        ).fetchall()
    result = page(heads, limit, lambda h: (h.device_id,))
    with db.cursor(row_factory=class_row(_Latest)) as cur:
        rows = cur.execute(
            "SELECT l.device_id, m.name AS metric, m.unit, l.value, l.ts FROM latest_readings l"
            " JOIN metrics m ON m.id = l.metric_id WHERE l.device_id = ANY(%s)"
            " ORDER BY l.device_id, m.name",
            ([h.device_id for h in result.items],),
        ).fetchall()
    by_device: dict[int, list[Reading]] = defaultdict(list)
    for r in rows:
        by_device[r.device_id].append(Reading(metric=r.metric, unit=r.unit, value=r.value, ts=r.ts))
    items = [DeviceLatest(**h.model_dump(), readings=by_device[h.device_id]) for h in result.items]
    return Page[DeviceLatest](items=items, next=result.next).model_dump_json().encode()


@pytest.fixture
def c01_state(api_db: Conn, ids: Ids) -> Iterator[int]:
    """Latest readings for C01's devices (some without any, some without presence)."""
    cid = ids.communities["C01"]
    devices = api_db.execute(
        "SELECT id, device_class FROM devices WHERE community_id = %s AND active ORDER BY id",
        (cid,),
    ).fetchall()
    metrics: dict[str, list[int]] = defaultdict(list)
    for mid, cls in api_db.execute("SELECT id, device_class FROM metrics ORDER BY id"):
        metrics[cls].append(mid)
    readings = []
    for i, (did, cls) in enumerate(devices):
        if i % 4 == 3:
            continue  # no readings at all
        for j, mid in enumerate(metrics[cls]):
            ts = T0 + timedelta(seconds=i, microseconds=0 if j % 2 else 1000 * j + 7)
            readings.append((did, mid, ts, VALUES[(i + j) % len(VALUES)]))
    saved = api_db.execute(
        "SELECT device_id, metric_id, ts, value FROM latest_readings WHERE device_id = ANY(%s)",
        ([d for d, _ in devices],),
    ).fetchall()
    presence = api_db.execute(
        "SELECT device_id, last_seen, online, status_ts FROM device_presence"
        " WHERE device_id = ANY(%s)",
        ([d for d, _ in devices],),
    ).fetchall()
    ids_ = [d for d, _ in devices]
    with api_db.transaction():
        api_db.execute("DELETE FROM latest_readings WHERE device_id = ANY(%s)", (ids_,))
        api_db.execute("DELETE FROM device_presence WHERE device_id = ANY(%s)", (ids_,))
        with api_db.cursor() as cur:
            cur.executemany(
                "INSERT INTO latest_readings (device_id, metric_id, ts, value)"
                " VALUES (%s, %s, %s, %s)",
                readings,
            )
            cur.executemany(
                "INSERT INTO device_presence (device_id, last_seen, online) VALUES (%s, %s, %s)",
                [
                    (d, T0 + timedelta(microseconds=i), i % 3 == 0)
                    for i, (d, _) in enumerate(devices)
                    if i % 5
                ],
            )
    yield cid
    with api_db.transaction():
        api_db.execute("DELETE FROM latest_readings WHERE device_id = ANY(%s)", (ids_,))
        api_db.execute("DELETE FROM device_presence WHERE device_id = ANY(%s)", (ids_,))
        with api_db.cursor() as cur:
            if saved:
                cur.executemany("INSERT INTO latest_readings VALUES (%s, %s, %s, %s)", saved)
            if presence:
                cur.executemany("INSERT INTO device_presence VALUES (%s, %s, %s, %s)", presence)


def test_latest_state_pages_are_written_as_the_models_wrote_them(
    api: Api, api_db: Conn, c01_state: int
) -> None:
    firm = api.as_("firm_f01")
    for limit in (500, 3):
        after, cursor, pages = 0, None, 0
        while True:
            params: dict[str, Any] = {"community_id": c01_state, "limit": limit}
            if cursor:
                params["cursor"] = cursor
            r = firm.get("/v1/telemetry/latest", params=params)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json"
            assert r.content == old_latest(api_db, c01_state, limit, after)
            body = r.json()
            pages += 1
            if body["next"] is None:
                break
            cursor, after = body["next"], body["items"][-1]["device_id"]
        assert pages > (1 if limit == 3 else 0)
    one = firm.get("/v1/telemetry/latest", params={"community_id": c01_state}).json()["items"][0]
    single = firm.get(f"/v1/devices/{one['uid']}/latest")
    assert single.json() == one
    past = {"community_id": c01_state, "cursor": encode_cursor((2_000_000_000,))}
    empty = firm.get("/v1/telemetry/latest", params=past)
    assert empty.status_code == 200 and empty.json() == {"items": [], "next": None}


def old_alarms(db: Conn, community_id: int, limit: int, after: int | None) -> bytes:
    with db.cursor(row_factory=class_row(Alarm)) as cur:
        rows = cur.execute(
            ALARM_SELECT + "d.community_id = %s AND a.state = ANY(%s) AND (%s::bigint IS NULL"
            " OR a.id < %s) ORDER BY a.id DESC LIMIT %s",
            (community_id, ["active", "acknowledged"], after, after, limit + 1),
        ).fetchall()
    return page(rows, limit, lambda r: (r.id,)).model_dump_json().encode()


def test_alarm_pages_are_written_as_the_models_wrote_them(api: Api, api_db: Conn, ids: Ids) -> None:
    cid = ids.communities["C01"]
    made = []
    for n, (k, code) in enumerate([(0, "FJ.ONE"), (1, "FJ.TWO"), (0, "FJ.THREE")]):
        alarm_id, _ = make_alarm(
            api_db,
            ids.devices[ids.device_in("C01", n=k)],
            code=code,
            work_order=n != 1,
            opened=T0 + timedelta(microseconds=n * 1500),
        )
        made.append(alarm_id)
    api_db.execute(
        "UPDATE alarms SET detail = %s, state = 'acknowledged', acknowledged_at = %s,"
        " acknowledged_by = %s, normal_since = %s WHERE id = %s",
        (
            Jsonb({"floor": 3.0, "note": "困人 ✓", "nested": {"v": [1, 2.5, None, True]}}),
            T0 + timedelta(seconds=1),
            "C01 值班室 (duty_staff, token 3)",
            T0,
            made[0],
        ),
    )
    try:
        for limit in (100, 2):
            after, cursor = None, None
            while True:
                params: dict[str, Any] = {
                    "community_id": cid,
                    "state": ["active", "acknowledged"],
                    "limit": limit,
                }
                if cursor:
                    params["cursor"] = cursor
                r = api.as_("firm_f01").get("/v1/alarms", params=params)
                assert r.status_code == 200, r.text
                assert r.content == old_alarms(api_db, cid, limit, after)
                body = r.json()
                if body["next"] is None:
                    break
                cursor, after = body["next"], body["items"][-1]["id"]
        assert api.as_("firm_f02").get("/v1/alarms", params={"community_id": cid}).json() == {
            "items": [],
            "next": None,
        }
    finally:
        api_db.execute(
            "UPDATE alarms SET state = 'cleared', cleared_at = now() WHERE id = ANY(%s)", (made,)
        )
