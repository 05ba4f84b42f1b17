"""Shared: maintenance windows in the database (I/O; the rules are ``lifecycle.maintenance``).

Used by the API (``api/routes/maintenance.py``, on its synchronous connection) and the CLI
(``shouwang maintenance``). The caller checks that the devices are in its scope first; here a
window's devices must exist and lie in one community.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.db import Conn
from lifecycle.maintenance import Kind, Window, WindowError, check_window, closed_end


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """A window with the visit it records."""

    id: int
    community_id: int
    kind: Kind
    starts_at: datetime
    ends_at: datetime
    maintenance_unit_id: int | None
    performer: str
    work_done: str
    opened_by: str
    closed_at: datetime | None
    closed_by: str | None
    device_ids: tuple[int, ...]

    def window(self) -> Window:
        return Window(self.id, self.kind, self.starts_at, self.ends_at, frozenset(self.device_ids))


_SELECT = (
    "SELECT w.id, w.community_id, w.kind, w.starts_at, w.ends_at, w.maintenance_unit_id,"
    " w.performer, w.work_done, w.opened_by, w.closed_at, w.closed_by,"
    " array(SELECT m.device_id FROM maintenance_window_devices m WHERE m.window_id = w.id"
    " ORDER BY m.device_id) FROM maintenance_windows w"
)


def _record(row: Sequence[Any]) -> WindowRecord:
    return WindowRecord(
        id=row[0],
        community_id=row[1],
        kind=row[2],
        starts_at=row[3],
        ends_at=row[4],
        maintenance_unit_id=row[5],
        performer=row[6],
        work_done=row[7],
        opened_by=row[8],
        closed_at=row[9],
        closed_by=row[10],
        device_ids=tuple(row[11]),
    )


def open_window(
    conn: Conn,
    *,
    kind: str,
    starts_at: datetime,
    ends_at: datetime,
    device_ids: Sequence[int],
    performer: str,
    work_done: str,
    maintenance_unit_id: int | None,
    opened_by: str,
    now: datetime,
) -> int:
    """Check the bounds, store the window; its id."""
    k = check_window(kind, starts_at, ends_at, device_ids, now)
    if not performer.strip():
        raise WindowError("performer", "name who does the work (a person or the unit)")
    rows = conn.execute(
        "SELECT id, community_id FROM devices WHERE id = ANY(%s)", (list(device_ids),)
    ).fetchall()
    missing = sorted(set(device_ids) - {int(r[0]) for r in rows})
    if missing:
        raise WindowError("device_ids", f"no such device: {', '.join(map(str, missing))}")
    communities = {int(r[1]) for r in rows}
    if len(communities) != 1:
        raise WindowError("device_ids", "one window covers devices of one community only")
    (wid,) = conn.execute(
        "INSERT INTO maintenance_windows (community_id, kind, starts_at, ends_at,"
        " maintenance_unit_id, performer, work_done, opened_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            communities.pop(),
            k,
            starts_at,
            ends_at,
            maintenance_unit_id,
            performer.strip(),
            work_done,
            opened_by,
        ),
    ).fetchone() or (None,)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO maintenance_window_devices (window_id, device_id) VALUES (%s, %s)",
            [(wid, d) for d in device_ids],
        )
    return int(wid)


def get(conn: Conn, window_id: int, *, lock: bool = False) -> WindowRecord | None:
    row = conn.execute(
        _SELECT + " WHERE w.id = %s" + (" FOR UPDATE" if lock else ""), (window_id,)
    ).fetchone()
    return None if row is None else _record(row)


def close(
    conn: Conn, window_id: int, *, closed_by: str, now: datetime, work_done: str | None = None
) -> WindowRecord:
    """Close a window early (at ``now``), optionally recording what was done."""
    w = get(conn, window_id, lock=True)
    if w is None:
        raise LookupError(window_id)
    end = closed_end(w.window(), now)
    conn.execute(
        "UPDATE maintenance_windows SET ends_at = %s, closed_at = %s, closed_by = %s,"
        " work_done = coalesce(%s, work_done) WHERE id = %s",
        (end, now, closed_by, work_done, window_id),
    )
    closed = get(conn, window_id)
    assert closed is not None
    return closed


def listing(
    conn: Conn, *, community_id: int | None = None, current_at: datetime | None = None
) -> list[WindowRecord]:
    """Windows, newest first: of one community, and/or only those covering ``current_at``."""
    rows = conn.execute(
        _SELECT + " WHERE (%(c)s::int IS NULL OR w.community_id = %(c)s)"
        " AND (%(t)s::timestamptz IS NULL OR (w.starts_at <= %(t)s AND %(t)s < w.ends_at))"
        " ORDER BY w.starts_at DESC, w.id DESC LIMIT 1000",
        {"c": community_id, "t": current_at},
    ).fetchall()
    return [_record(r) for r in rows]


def under_maintenance(conn: Conn, device_id: int, at: datetime) -> bool:
    """The database's answer (``device_in_maintenance``)."""
    row = conn.execute("SELECT device_in_maintenance(%s, %s)", (device_id, at)).fetchone()
    return bool(row and row[0])


def maintenance_spans(
    conn: Conn, device_class: str, since: datetime, until: datetime
) -> list[tuple[int, float, float]]:
    """(device id, start, end) in epoch seconds of every window of the class's devices overlapping
    ``[since, until)``: not normal operation, for retraining to leave out (as ``Span``s of
    ``analytics.retraining``, beside the alarm episodes)."""
    rows = conn.execute(
        "SELECT m.device_id, extract(epoch FROM w.starts_at)::float8,"
        " extract(epoch FROM w.ends_at)::float8"
        " FROM maintenance_windows w JOIN maintenance_window_devices m ON m.window_id = w.id"
        " JOIN devices d ON d.id = m.device_id"
        " WHERE d.device_class = %(cls)s AND w.starts_at < %(until)s AND w.ends_at > %(since)s"
        " AND w.ends_at > w.starts_at ORDER BY m.device_id, w.starts_at",
        {"cls": device_class, "since": since, "until": until},
    ).fetchall()
    return [(int(d), float(s), float(e)) for d, s, e in rows]
