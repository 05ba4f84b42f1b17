"""API: telemetry: each device's latest values, and time-bucketed ranges of its readings."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Query
from psycopg import sql
from pydantic import BaseModel

from api import scope
from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES, invalid
from api.fields import OptId, Uid, aware
from api.pagination import Page, Paging, page
from api.queries import fetch_all
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


class _Head(BaseModel):
    device_id: int
    uid: str
    device_class: str
    community_id: int
    last_seen: datetime | None
    online: bool | None


class _Latest(Reading):
    device_id: int


async def _latest(db: Db, heads: list[_Head]) -> list[DeviceLatest]:
    rows = await fetch_all(
        db,
        _Latest,
        "SELECT l.device_id, m.name AS metric, m.unit, l.value, l.ts FROM latest_readings l"
        " JOIN metrics m ON m.id = l.metric_id WHERE l.device_id = ANY(%s)"
        " ORDER BY l.device_id, m.name",
        ([h.device_id for h in heads],),
    )
    by_device: dict[int, list[Reading]] = defaultdict(list)
    for r in rows:
        by_device[r.device_id].append(Reading(metric=r.metric, unit=r.unit, value=r.value, ts=r.ts))
    return [DeviceLatest(**h.model_dump(), readings=by_device[h.device_id]) for h in heads]


_HEAD = (
    "SELECT d.id AS device_id, d.uid, d.device_class, d.community_id, pr.last_seen, pr.online"
    " FROM devices d LEFT JOIN device_presence pr ON pr.device_id = d.id WHERE "
)


@router.get("/telemetry/latest", response_model=Page[DeviceLatest])
async def list_latest(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    device_class: Annotated[DeviceClass | None, Query()] = None,
) -> Page[DeviceLatest]:
    """The current state of every active device in scope: when it was last heard from, whether
    it says it is online, and its latest value of each metric."""
    require(p, Action.READ_COMMUNITIES)
    w = scope.communities(Where().add("d.active"), p, "d.community_id")
    w.add_if(community_id, "d.community_id = %(community)s", "community")
    w.add_if(device_class, "d.device_class = %(cls)s", "cls")
    w.add_if(paging.after_id(), "d.id > %(after)s", "after")
    q = sql.SQL(_HEAD) + w.sql() + sql.SQL(" ORDER BY d.id LIMIT %(n)s")
    heads = await fetch_all(db, _Head, q, {**w.params, "n": paging.limit + 1})
    result = page(heads, paging.limit, lambda h: (h.device_id,))
    return Page[DeviceLatest](items=await _latest(db, result.items), next=result.next)


@router.get("/devices/{uid}/latest")
async def get_latest(db: Db, p: Caller, uid: Uid) -> DeviceLatest:
    require(p, Action.READ_COMMUNITIES)
    dev = await find(db, p, uid)
    q = sql.SQL(_HEAD) + sql.SQL("d.id = %s")
    heads = await fetch_all(db, _Head, q, (dev.id,))
    return (await _latest(db, heads))[0]


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
        " FROM readings r JOIN metrics m ON m.id = r.metric_id"
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
