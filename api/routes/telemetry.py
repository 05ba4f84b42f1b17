"""API: telemetry: each device's latest values, and time-bucketed ranges of its readings."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Final

from fastapi import APIRouter, Query, Request, Response
from psycopg import sql
from pydantic import BaseModel

from api import scope
from api.deps import AsyncConn, Caller, Db
from api.errors import ERROR_RESPONSES, invalid
from api.fastjson import page_response
from api.fields import OptId, Uid, aware
from api.pagination import Page, Paging
from api.routes.devices import find
from api.scope import Action, Where, require
from core.catalogue import DeviceClass

router = APIRouter(tags=["telemetry"], responses=ERROR_RESPONSES)
MAX_POINTS: Final = 10_000


class Reading(BaseModel):
    metric: str
    unit: str
    value: float
    ts: datetime


class DeviceLatest(BaseModel):
    device_id: int
    uid: str
    device_class: str
    community_id: int
    last_seen: datetime | None
    online: bool | None
    readings: list[Reading]


class Point(BaseModel):
    t: datetime
    avg: float
    min: float
    max: float
    last: float
    count: int


class Series(BaseModel):
    metric: str
    unit: str
    points: list[Point]


class Range(BaseModel):
    uid: str
    start: datetime
    end: datetime
    bucket_s: int
    series: list[Series]


_HEAD = (
    "SELECT d.id, d.uid, d.device_class, d.community_id, pr.last_seen, pr.online"
    " FROM devices d LEFT JOIN device_presence pr ON pr.device_id = d.id WHERE {where}"
    " ORDER BY d.id LIMIT %(n)s"
)
_READINGS = "SELECT device_id, metric_id, value, ts FROM latest_readings WHERE device_id = ANY(%s)"


@dataclass
class MetricNames:
    """The ``metrics`` table (catalogue rows written by ``shouwang db migrate``): id -> (name,
    unit, place in ``ORDER BY name``), so the latest readings need no join. Read again after
    :data:`REFRESH_S`, and when a reading names a metric it does not know (at most once a
    second: readings of a metric missing from the table are left out, as a join would)."""

    REFRESH_S: ClassVar[float] = 60.0
    by_id: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    read_at: float = -math.inf

    async def get(self, db: AsyncConn, ids: Iterable[int]) -> dict[int, tuple[str, str, int]]:
        age = time.monotonic() - self.read_at
        if age > self.REFRESH_S or (age > 1.0 and not self.by_id.keys() >= set(ids)):
            cur = await db.execute(
                "SELECT id, name, unit, rank() OVER (ORDER BY name) FROM metrics"
            )
            self.by_id = {int(i): (n, u, int(r)) for i, n, u, r in await cur.fetchall()}
            self.read_at = time.monotonic()
        return self.by_id


def _metric_names(request: Request) -> MetricNames:
    names: MetricNames | None = getattr(request.app.state, "metric_names", None)
    if names is None:
        names = request.app.state.metric_names = MetricNames()
    return names


async def _latest(db: Db, names: MetricNames, w: Where, n: int) -> list[dict[str, Any]]:
    """``DeviceLatest`` as dicts (for :mod:`api.fastjson`), ``n`` devices at most; readings in
    metric name order."""
    cur = db.cursor(binary=True)
    await cur.execute(sql.SQL(_HEAD).format(where=w.sql()), {**w.params, "n": n})
    heads = await cur.fetchall()
    await cur.execute(_READINGS, ([h[0] for h in heads],))
    rows = await cur.fetchall()
    metrics = await names.get(db, {r[1] for r in rows})
    by_device: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for did, mid, value, ts in rows:
        m = metrics.get(mid)
        if m is not None:
            reading = {"metric": m[0], "unit": m[1], "value": value, "ts": ts}
            by_device.setdefault(did, []).append((m[2], reading))
    devices = []
    for did, uid, cls, cid, seen, online in heads:
        ranked = by_device.get(did, [])
        ranked.sort(key=_rank)
        devices.append(
            {
                "device_id": did,
                "uid": uid,
                "device_class": cls,
                "community_id": cid,
                "last_seen": seen,
                "online": online,
                "readings": [r for _, r in ranked],
            }
        )
    return devices


def _rank(r: tuple[int, dict[str, Any]]) -> int:
    return r[0]


@router.get("/telemetry/latest", response_model=Page[DeviceLatest])
async def list_latest(
    request: Request,
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    device_class: Annotated[DeviceClass | None, Query()] = None,
) -> Response:
    """The current state of every active device in scope: when it was last heard from, whether
    it says it is online, and its latest value of each metric."""
    require(p, Action.READ_COMMUNITIES)
    w = scope.communities(Where().add("d.active"), p, "d.community_id")
    w.add_if(community_id, "d.community_id = %(community)s", "community")
    w.add_if(device_class, "d.device_class = %(cls)s", "cls")
    w.add_if(paging.after_id(), "d.id > %(after)s", "after")
    devices = await _latest(db, _metric_names(request), w, paging.limit + 1)
    return page_response(devices, paging.limit, lambda d: (d["device_id"],))


@router.get("/devices/{uid}/latest")
async def get_latest(request: Request, db: Db, p: Caller, uid: Uid) -> DeviceLatest:
    require(p, Action.READ_COMMUNITIES)
    dev = await find(db, p, uid)
    where = Where().add("d.id = %(id)s", id=dev.id)
    (device,) = await _latest(db, _metric_names(request), where, 1)
    return DeviceLatest.model_validate(device)


@router.get("/devices/{uid}/readings")
async def get_readings(
    db: Db,
    p: Caller,
    uid: Uid,
    metric: Annotated[list[str], Query(min_length=1, max_length=20)],
    start: Annotated[datetime | None, Query(description="default: an hour before end")] = None,
    end: Annotated[datetime | None, Query(description="default: now")] = None,
    bucket_s: Annotated[int, Query(ge=1, le=30 * 86_400)] = 60,
) -> Range:
    """Readings of the device's metrics between start and end, aggregated per time bucket
    (TimescaleDB ``time_bucket``): average, minimum, maximum, last value and count."""
    require(p, Action.READ_COMMUNITIES)
    dev = await find(db, p, uid)
    end = aware("end", end) or datetime.now(UTC)
    try:
        start = aware("start", start) or end - timedelta(hours=1)
    except OverflowError:
        raise invalid("query.end", "too early to reach back an hour; give start") from None
    if start >= end:
        raise invalid("query.start", "start must be before end")
    if (end - start).total_seconds() / bucket_s > MAX_POINTS:
        raise invalid("query.bucket_s", f"at most {MAX_POINTS} buckets; widen the bucket")
    known = dict(
        await (
            await db.execute(
                "SELECT name, unit FROM metrics WHERE device_class = %s", (dev.device_class,)
            )
        ).fetchall()
    )
    for i, name in enumerate(metric):
        if name not in known:
            raise invalid(
                f"query.metric[{i}]", f"{dev.device_class} has: {', '.join(sorted(known))}"
            )
    cur = await db.execute(
        "SELECT m.name, time_bucket(make_interval(secs => %(b)s), r.ts) AS t, avg(r.value),"
        " min(r.value), max(r.value), last(r.value, r.ts), count(*)"
        " FROM readings_between(%(start)s, %(end)s) r JOIN metrics m ON m.id = r.metric_id"
        " WHERE r.device_id = %(d)s AND m.device_class = %(cls)s AND m.name = ANY(%(names)s)"
        " AND r.ts >= %(start)s AND r.ts < %(end)s GROUP BY m.name, t ORDER BY m.name, t",
        {
            "b": bucket_s,
            "d": dev.id,
            "cls": dev.device_class,
            "names": list(dict.fromkeys(metric)),
            "start": start,
            "end": end,
        },
    )
    points: dict[str, list[Point]] = defaultdict(list)
    for name, t, avg, lo, hi, last, n in await cur.fetchall():
        points[name].append(Point(t=t, avg=avg, min=lo, max=hi, last=last, count=n))
    series = [
        Series(metric=name, unit=known[name], points=points[name]) for name in dict.fromkeys(metric)
    ]
    return Range(uid=uid, start=start, end=end, bucket_s=bucket_s, series=series)
