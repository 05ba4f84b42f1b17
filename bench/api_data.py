"""API: the data the HTTP benchmark reads, put in place and taken away again.

The demo county is seeded when the database has no communities. Devices without current state
get plausible latest readings (the middle of each metric's physical range) and presence rows,
and about one device in :data:`ALARM_EVERY` gets an open alarm (detector ``bench``) from its
class's responsibility-list entries. :func:`remove` deletes exactly what :func:`prepare` added,
so a demo database is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from api.tokens import issue, revoke
from core.catalogue import METRICS
from core.db import Conn
from responsibility.loader import default_list
from responsibility.model import Entry
from simulators.county import demo_county
from simulators.seed import seed

ALARM_EVERY = 20


@dataclass(frozen=True, slots=True)
class Added:
    """What the benchmark added, to take away after it."""

    at: datetime
    readings: list[tuple[int, int]]
    presence: list[int]
    alarms: list[int]
    token_id: int


@dataclass(frozen=True, slots=True)
class Target:
    firm: str
    token: str
    community_ids: list[int]
    devices: int
    open_alarms: int


def latest_rows(
    devices: Iterable[tuple[int, str]], ts: datetime
) -> list[tuple[int, int, datetime, float]]:
    """A latest reading for every metric of every ``(device id, class)`` (pure)."""
    by_class: dict[str, list[tuple[int, float]]] = {}
    for m in METRICS:
        by_class.setdefault(m.device_class.value, []).append((m.id, (m.lo + m.hi) / 2))
    return [(d, mid, ts, v) for d, cls in devices for mid, v in by_class.get(cls, [])]


def alarm_rows(devices: Iterable[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """``(device id, event code, severity)`` for one device in ALARM_EVERY (pure)."""
    entries: dict[str, list[Entry]] = {}
    for e in default_list().entries.values():
        entries.setdefault(str(e.device_class), []).append(e)
    out = []
    for i, (d, cls) in enumerate(sorted(devices)):
        choices = entries.get(cls)
        if i % ALARM_EVERY == 0 and choices:
            e = choices[(i // ALARM_EVERY) % len(choices)]
            out.append((d, e.code, str(e.severity)))
    return out


def _columns(rows: Sequence[tuple[object, ...]], n: int) -> list[list[object]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(n)]


def prepare(conn: Conn, state_dir: Path, firm: str | None, now: datetime) -> tuple[Target, Added]:
    """Seed if empty, add missing state and alarms, issue a firm-admin token for ``firm`` (default:
    the firm running the most communities)."""
    if conn.execute("SELECT 1 FROM communities LIMIT 1").fetchone() is None:
        seed(conn, demo_county(), state_dir / "device-secrets.json")
    row = conn.execute(
        "SELECT f.code FROM firms f JOIN communities c ON c.firm_id = f.id"
        " WHERE %s::text IS NULL OR f.code = %s GROUP BY f.code ORDER BY count(*) DESC, f.code"
        " LIMIT 1",
        (firm, firm),
    ).fetchone()
    if row is None:
        raise SystemExit(f"no firm {firm!r} running a community in this database")
    code = str(row[0])
    devices = [
        (int(d), str(c))
        for d, c in conn.execute("SELECT id, device_class FROM devices WHERE active").fetchall()
    ]
    with conn.transaction():
        readings = conn.execute(
            "INSERT INTO latest_readings (device_id, metric_id, ts, value)"
            " SELECT * FROM unnest(%s::int[], %s::smallint[], %s::timestamptz[], %s::float8[])"
            " ON CONFLICT DO NOTHING RETURNING device_id, metric_id",
            _columns(latest_rows(devices, now), 4),
        ).fetchall()
        presence = conn.execute(
            "INSERT INTO device_presence (device_id, last_seen, online, status_ts)"
            " SELECT d, %s, true, %s FROM unnest(%s::int[]) AS u(d)"
            " ON CONFLICT DO NOTHING RETURNING device_id",
            (now, now, [d for d, _ in devices]),
        ).fetchall()
        alarms = conn.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
            " last_triggered_at, list_version)"
            " SELECT d, c, s, 'active', 'bench', %s, %s, %s"
            " FROM unnest(%s::int[], %s::text[], %s::text[]) AS u(d, c, s)"
            " ON CONFLICT (device_id, event_code) WHERE state <> 'cleared' DO NOTHING RETURNING id",
            (now, now, default_list().version, *_columns(alarm_rows(devices), 3)),
        ).fetchall()
        issued = issue(conn, "firm_admin", "shouwang bench api", {"firm": code})
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT c.id FROM communities c JOIN firms f ON f.id = c.firm_id WHERE f.code = %s"
            " ORDER BY c.id",
            (code,),
        ).fetchall()
    ]
    (n_devices, n_alarms) = conn.execute(
        "SELECT count(DISTINCT d.id), count(a.id) FROM devices d"
        " LEFT JOIN alarms a ON a.device_id = d.id AND a.state <> 'cleared'"
        " WHERE d.community_id = ANY(%s)",
        (ids,),
    ).fetchone() or (0, 0)
    target = Target(code, issued.token, ids, int(n_devices), int(n_alarms))
    added = Added(
        now,
        [(int(d), int(m)) for d, m in readings],
        [int(r[0]) for r in presence],
        [int(r[0]) for r in alarms],
        issued.id,
    )
    return target, added


def remove(conn: Conn, added: Added) -> None:
    with conn.transaction():
        revoke(conn, added.token_id)
        if added.readings:
            devices, metrics = zip(*added.readings, strict=True)
            conn.execute(
                "DELETE FROM latest_readings l USING unnest(%s::int[], %s::smallint[]) AS u(d, m)"
                " WHERE l.device_id = u.d AND l.metric_id = u.m AND l.ts = %s",
                (list(devices), list(metrics), added.at),
            )
        conn.execute(
            "DELETE FROM device_presence WHERE device_id = ANY(%s) AND last_seen = %s",
            (added.presence, added.at),
        )
        # What ingest or analytics changed meanwhile stays: newer readings, alarms that were
        # acknowledged, cleared, or have a work order or notification.
        conn.execute(
            "DELETE FROM alarms a WHERE a.id = ANY(%s) AND a.state = 'active'"
            " AND NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.alarm_id = a.id)"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alarm_id = a.id)"
            " AND NOT EXISTS (SELECT 1 FROM ack_tokens_used t WHERE t.alarm_id = a.id)",
            (added.alarms,),
        )
