"""Analytics: writes alarm transitions and work orders, each batch in one transaction (I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from core.db import Conn
from lifecycle.alarms import Alarm, Kind, Transition
from lifecycle.deadlines import Calendar, Plan, plan
from responsibility.model import Entry


def dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: int
    uid: str
    device_class: str
    community_id: int
    community_code: str
    firm_id: int | None
    maintenance_unit_id: int | None
    report_interval_s: int
    attributes: Mapping[str, Any]
    community_name: str = ""
    building: str = ""
    county_code: str | None = None  # for the county's overrides of the responsibility list


def load_devices(conn: Conn) -> dict[int, DeviceInfo]:
    rows = conn.execute(
        "SELECT d.id, d.uid, d.device_class, d.community_id, c.code, c.firm_id, d.maintenance_unit_id,"
        " d.report_interval_s, d.attributes, c.name_zh, coalesce(b.name, ''),"
        " county_of_region(c.region_id)"
        " FROM devices d JOIN communities c ON c.id = d.community_id"
        " LEFT JOIN buildings b ON b.id = d.building_id WHERE d.active"
    ).fetchall()
    return {
        int(r[0]): DeviceInfo(
            int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], int(r[7]), r[8], r[9], r[10], r[11]
        )
        for r in rows
    }


def load_open_alarms(conn: Conn, device_id: int | None = None) -> list[Alarm]:
    """The alarms not cleared (of one device)."""
    rows = conn.execute(
        "SELECT id, device_id, event_code, severity, detector, extract(epoch FROM opened_at),"
        " extract(epoch FROM last_triggered_at), extract(epoch FROM normal_since), triggers, flaps"
        " FROM alarms WHERE state <> 'cleared' AND (%(d)s::int IS NULL OR device_id = %(d)s)",
        {"d": device_id},
    ).fetchall()
    return [
        Alarm(
            int(d),
            c,
            s,
            det,
            float(o),
            float(lt),
            None if ns is None else float(ns),
            int(tr),
            int(fl),
            int(i),
        )
        for i, d, c, s, det, o, lt, ns, tr, fl in rows
    ]


def active_codes(conn: Conn, device_id: int | None = None) -> dict[int, dict[str, float]]:
    """The device fault codes still raised (their latest event in 30 days active), by device,
    each with the data time it was raised at (epoch seconds): a restart must not forget them,
    the device will not say them again, and a backlog of older samples replayed after the
    restart must not see them before they were raised."""
    out: dict[int, dict[str, float]] = {}
    for dev, code, ts in conn.execute(
        "SELECT device_id, code, extract(epoch FROM ts)::float8 FROM (SELECT DISTINCT ON"
        " (device_id, code) device_id, code, active, ts FROM events"
        " WHERE ts > now() - interval '30 days' AND (%(d)s::int IS NULL OR device_id = %(d)s)"
        " ORDER BY device_id, code, ts DESC) e WHERE active",
        {"d": device_id},
    ).fetchall():
        out.setdefault(int(dev), {})[str(code)] = float(ts)
    return out


def device_uid(conn: Conn, device_id: int) -> str:
    """A device's uid, active or not (``#<id>`` when there is no such device)."""
    row = conn.execute("SELECT uid FROM devices WHERE id = %s", (device_id,)).fetchone()
    return f"#{device_id}" if row is None else str(row[0])


def close_device_alarms(conn: Conn, device_id: int, reason: str) -> int:
    """Clear every open alarm of a device that is no longer watched (``reason``, e.g.
    ``device_deactivated``); its work orders stay as they are. How many were open."""
    return conn.execute(
        "UPDATE alarms SET state = 'cleared', cleared_at = clock_timestamp(), cleared_reason = %s"
        " WHERE device_id = %s AND state <> 'cleared'",
        (reason, device_id),
    ).rowcount


def apply(
    conn: Conn,
    transitions: list[Transition],
    *,
    entry_of: Callable[[int, str], Entry | None],
    devices: Mapping[int, DeviceInfo],
    calendar: Calendar,
    list_version: str,
) -> None:
    """Write ``transitions`` and their outbox rows in one transaction."""
    with conn.transaction():
        for tr in transitions:
            a = tr.alarm
            entry, dev = entry_of(a.device_id, a.code), devices[a.device_id]
            match tr.kind:
                case Kind.OPEN:
                    wo, p = _open(conn, a, entry, dev, calendar, list_version)
                    _notify(conn, "alarm_opened", a, entry, dev, wo, tr.t, p)
                case Kind.RETRIGGER:
                    conn.execute(
                        "UPDATE alarms SET triggers = %s, flaps = %s, last_triggered_at = %s,"
                        " normal_since = NULL, detail = detail || %s WHERE id = %s AND state <> 'cleared'",
                        (a.triggers, a.flaps, dt(a.last_triggered_at), Jsonb(dict(a.detail)), a.id),
                    )
                case Kind.NORMAL:
                    conn.execute(
                        "UPDATE alarms SET normal_since = %s WHERE id = %s AND state <> 'cleared'",
                        (dt(tr.t), a.id),
                    )
                case Kind.CLEAR:
                    cleared, wo_id = _clear(conn, a, tr.t)
                    if cleared:  # not already cleared by hand (that wrote its own notice)
                        _notify(conn, "alarm_cleared", a, entry, dev, wo_id, tr.t)
                case Kind.RAISE:
                    conn.execute(
                        "UPDATE alarms SET severity = %s WHERE id = %s AND state <> 'cleared'",
                        (a.severity, a.id),
                    )
                    row = conn.execute(
                        "UPDATE work_orders SET severity = %s WHERE alarm_id = %s RETURNING id",
                        (a.severity, a.id),
                    ).fetchone()
                    wo_id = None if row is None else int(row[0])
                    _notify(conn, "alarm_raised", a, entry, dev, wo_id, tr.t)


def _notify(
    conn: Conn,
    kind: str,
    a: Alarm,
    entry: Entry | None,
    dev: DeviceInfo,
    wo: int | None,
    t: float,
    p: Plan | None = None,
) -> None:
    """The outbox row for this change, in the same transaction: the dispatcher delivers it."""
    if entry is None:
        return
    deadlines = None
    if p is not None:
        deadlines = {
            "response": None if p.response_due is None else p.response_due.isoformat(),
            "arrival": None if p.arrival_due is None else p.arrival_due.isoformat(),
            "resolution": p.resolution_due.isoformat(),
        }
    payload = {
        "kind": kind,
        "alarm_id": a.id,
        "work_order_id": wo,
        "code": a.code,
        "name": {"zh": entry.name.zh, "en": entry.name.en},
        "severity": a.severity,
        "device": dev.uid,
        "device_class": dev.device_class,
        "community": dev.community_code,
        "community_name": dev.community_name,
        "building": dev.building,
        "at": dt(t).isoformat(),
        "opened_at": dt(a.opened_at).isoformat(),
        "responsible": str(entry.responsible),
        "triggers": a.triggers,
        "deadlines": deadlines,
    }
    if a.detail:  # what the detector saw (a learned alarm's explanation)
        payload["detail"] = dict(a.detail)
    conn.execute(
        "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
        " responsible_party, payload) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (kind, a.id, wo, dev.community_id, a.severity, str(entry.responsible), Jsonb(payload)),
    )


def _open(
    conn: Conn,
    a: Alarm,
    entry: Entry | None,
    dev: DeviceInfo,
    calendar: Calendar,
    list_version: str,
) -> tuple[int | None, Plan | None]:
    row = conn.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, detail, opened_at,"
        " last_triggered_at, list_version) VALUES (%s, %s, %s, 'active', %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            a.device_id,
            a.code,
            a.severity,
            a.detector,
            Jsonb(dict(a.detail)),
            dt(a.opened_at),
            dt(a.last_triggered_at),
            list_version,
        ),
    ).fetchone()
    assert row is not None
    a.id = int(row[0])
    if entry is None or not entry.work_order:  # no entry in force for it: no work order either
        return None, None
    opened = dt(a.opened_at)
    p = plan(entry, opened, calendar)
    wo = conn.execute(
        "INSERT INTO work_orders (alarm_id, device_id, community_id, firm_id, maintenance_unit_id, event_code,"
        " severity, responsible_party, supervisor, status, opened_at, response_due, arrival_due,"
        " resolution_due, emergency_fund, notify_regulator, list_version)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'occurred', %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            a.id,
            a.device_id,
            dev.community_id,
            dev.firm_id,
            dev.maintenance_unit_id,
            a.code,
            a.severity,
            str(entry.responsible),
            str(entry.supervisor),
            opened,
            p.response_due,
            p.arrival_due,
            p.resolution_due,
            entry.emergency_fund,
            entry.notify_regulator,
            list_version,
        ),
    ).fetchone()
    assert wo is not None
    conn.execute(
        "INSERT INTO work_order_transitions (work_order_id, at, actor, from_status, to_status, note)"
        " VALUES (%s, %s, 'system', NULL, 'occurred', %s)",
        (wo[0], opened, f"filed by {a.detector}"),
    )
    if p.escalation:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO escalation_steps (work_order_id, step, notify, due_at) VALUES (%s, %s, %s, %s)",
                [(wo[0], step, party, due) for step, party, due in p.escalation],
            )
    return int(wo[0]), p


def _clear(conn: Conn, a: Alarm, t: float) -> tuple[bool, int | None]:
    """Clear the alarm and close its work order as recovered; (whether this cleared it, the
    work order). An alarm someone cleared by hand meanwhile stays as they left it."""
    if (
        conn.execute(
            "UPDATE alarms SET state = 'cleared', cleared_at = %s, cleared_reason = 'recovered'"
            " WHERE id = %s AND state <> 'cleared'",
            (dt(t), a.id),
        ).rowcount
        == 0
    ):
        return False, None
    row = conn.execute(
        "SELECT id, status FROM work_orders WHERE alarm_id = %s AND closed_at IS NULL", (a.id,)
    ).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE work_orders SET status = 'completed', closed_at = %s, closed_reason = 'device_recovered'"
            " WHERE id = %s",
            (dt(t), row[0]),
        )
    if row is not None:
        conn.execute(
            "INSERT INTO work_order_transitions (work_order_id, at, actor, from_status, to_status, note)"
            " VALUES (%s, %s, 'system', %s, 'completed', 'device recovered')",
            (row[0], dt(t), row[1]),
        )
        conn.execute(
            "UPDATE escalation_steps SET cancelled_at = %s WHERE work_order_id = %s AND fired_at IS NULL"
            " AND cancelled_at IS NULL",
            (dt(t), row[0]),
        )
    return True, None if row is None else int(row[0])


def record_breaches(conn: Conn, now: float) -> int:
    """Record each limit a work order has missed (once); return how many were new."""
    cur = conn.execute(
        "INSERT INTO work_order_breaches (work_order_id, limit_kind, due, recorded_at)"
        " SELECT id, k, due, %(now)s FROM work_orders,"
        " LATERAL (VALUES ('response', response_due, responded_at),"
        "                 ('arrival', arrival_due, on_site_at),"
        "                 ('resolution', resolution_due, closed_at)) AS l(k, due, done)"
        " WHERE due IS NOT NULL AND coalesce(done, %(now)s) > due"
        "   AND status <> 'false_alarm'"
        " ON CONFLICT DO NOTHING",
        {"now": dt(now)},
    )
    return cur.rowcount


def cleared_elsewhere(conn: Conn, alarm_ids: list[int]) -> list[int]:
    """Which of these alarms, open as far as analytics knows, someone cleared by hand (API)."""
    if not alarm_ids:
        return []
    rows = conn.execute(
        "SELECT id FROM alarms WHERE id = ANY(%s) AND state = 'cleared'", (alarm_ids,)
    ).fetchall()
    return [int(r[0]) for r in rows]
