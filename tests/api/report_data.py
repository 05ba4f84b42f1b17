"""Factories for the report and disclosure tests: registry rows and work orders with known times."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.db import Conn


def region(db: Conn, code: str, parent: str = "DEMO") -> int:
    row = db.execute(
        "INSERT INTO regions (code, kind, parent_id, name_zh, name_en)"
        " SELECT %s, 'township', id, %s, %s FROM regions WHERE code = %s RETURNING id",
        (code, f"{code}镇", f"{code} Town", parent),
    ).fetchone()
    assert row is not None
    return int(row[0])


def firm(db: Conn, code: str, complaint_phone: str = "0359-5550000") -> int:
    row = db.execute(
        "INSERT INTO firms (code, name_zh, name_en, credit_code, contact_phone, complaint_phone)"
        " VALUES (%s, %s, %s, 'CREDIT-SECRET', '13900000000', %s) RETURNING id",
        (code, f"{code}物业", f"{code} Property", complaint_phone),
    ).fetchone()
    assert row is not None
    return int(row[0])


def unit(db: Conn, code: str, kind: str, phone: str) -> int:
    row = db.execute(
        "INSERT INTO maintenance_units (code, kind, name_zh, name_en, phone)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (code, kind, f"{code}维保", f"{code} Service", phone),
    ).fetchone()
    assert row is not None
    return int(row[0])


def community(db: Conn, code: str, region_id: int, firm_id: int) -> int:
    row = db.execute(
        "INSERT INTO communities (code, region_id, firm_id, name_zh, name_en, address)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (code, region_id, firm_id, f"{code}小区", f"{code} Community", f"{code}路1号"),
    ).fetchone()
    assert row is not None
    return int(row[0])


def device(
    db: Conn,
    uid: str,
    community_id: int,
    device_class: str = "elevator",
    unit_id: int | None = None,
    created_at: datetime | None = None,
) -> int:
    row = db.execute(
        "INSERT INTO devices (uid, device_class, community_id, location, maintenance_unit_id,"
        ' attributes, created_at) VALUES (%s, %s, %s, %s, %s, \'{"secret_key": "s3cr3t"}\','
        " coalesce(%s, now())) RETURNING id",
        (uid, device_class, community_id, f"{uid} location", unit_id, created_at),
    ).fetchone()
    assert row is not None
    return int(row[0])


def work_order(
    db: Conn,
    device_id: int,
    event_code: str,
    opened_at: datetime,
    *,
    severity: str = "P0",
    response_due_s: float | None = 60,
    arrival_due_s: float | None = 1800,
    resolution_due_s: float = 7200,
    responded_s: float | None = None,
    on_site_s: float | None = None,
    closed_s: float | None = None,
    false_alarm: bool = False,
) -> int:
    """A work order (and its alarm) opened at ``opened_at``; the other times are seconds after."""

    def at(s: float | None) -> datetime | None:
        return None if s is None else opened_at + timedelta(seconds=s)

    closed = closed_s is not None
    alarm = db.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
        " last_triggered_at, cleared_at, list_version) VALUES (%s, %s, %s, %s, 'test', %s, %s, %s,"
        " 'test') RETURNING id",
        (
            device_id,
            event_code,
            severity,
            "cleared" if closed else "active",
            opened_at,
            opened_at,
            at(closed_s),
        ),
    ).fetchone()
    assert alarm is not None
    status = "false_alarm" if false_alarm else "completed" if closed else "occurred"
    row = db.execute(
        "INSERT INTO work_orders (alarm_id, device_id, community_id, firm_id, event_code, severity,"
        " responsible_party, supervisor, status, opened_at, response_due, arrival_due,"
        " resolution_due, responded_at, on_site_at, closed_at, closed_reason, emergency_fund,"
        " notify_regulator, list_version)"
        " SELECT %s, d.id, c.id, c.firm_id, %s, %s, 'elevator_maintenance_unit',"
        " 'market_supervision', %s, %s, %s, %s, %s, %s, %s, %s, %s, false, false, 'test'"
        " FROM devices d JOIN communities c ON c.id = d.community_id WHERE d.id = %s RETURNING id",
        (
            alarm[0],
            event_code,
            severity,
            status,
            opened_at,
            at(response_due_s),
            at(arrival_due_s),
            at(resolution_due_s),
            at(responded_s),
            at(on_site_s),
            at(closed_s),
            None if not closed else status,
            device_id,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def maintenance(
    db: Conn, device_id: int, kind: str, at: datetime, cost: float | None = None
) -> None:
    db.execute(
        "INSERT INTO maintenance_records (device_id, maintenance_unit_id, kind, performed_at,"
        " cost_cny) SELECT id, maintenance_unit_id, %s, %s, %s FROM devices WHERE id = %s",
        (kind, at, cost, device_id),
    )


def complaint(
    db: Conn,
    community_id: int,
    category: str,
    opened_at: datetime,
    *,
    response_due_s: float = 3600,
    resolution_due_s: float = 86400,
    responded_s: float | None = None,
    closed_s: float | None = None,
) -> int:
    """A resident's complaint as a work order (no alarm, no device) opened at ``opened_at``; the
    other times are seconds after."""

    def at(s: float | None) -> datetime | None:
        return None if s is None else opened_at + timedelta(seconds=s)

    closed = closed_s is not None
    row = db.execute(
        "INSERT INTO work_orders (source, community_id, firm_id, event_code, severity,"
        " responsible_party, supervisor, status, opened_at, response_due, resolution_due,"
        " responded_at, closed_at, closed_reason, emergency_fund, notify_regulator, list_version)"
        " SELECT 'complaint', c.id, c.firm_id, %s, 'P3', 'property_firm', 'county_housing_bureau',"
        " %s, %s, %s, %s, %s, %s, %s, false, false, 'test' FROM communities c WHERE c.id = %s"
        " RETURNING id",
        (
            category,
            "completed" if closed else "occurred",
            opened_at,
            at(response_due_s),
            at(resolution_due_s),
            at(responded_s),
            at(closed_s),
            "completed" if closed else None,
            community_id,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])
