"""Analytics: the multivariate models in the database (I/O shell around ``analytics.multivariate``).

``train_from_history`` reads a class's readings, one row per device and instant, and trains
(stretches of data given as ``exclude`` left out: alarm episodes, ``alarm_spans``); ``save``
stores a version and makes it the active one; ``latest`` is what the running analytics polls to
pick a newly activated version up without a restart; ``false_alarms`` counts a list entry's
alarms judged false, for the drift check (``analytics.retraining``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from psycopg import sql

from analytics.multivariate import DEFAULT_FEATURES, Model, train
from analytics.retraining import DAY_S, Span
from core.catalogue import DeviceClass, metrics_by_class
from core.db import Conn
from core.errors import ConfigError

_PIVOT_COLUMN = sql.SQL("max(r.value) FILTER (WHERE m.name = %s)")
_HISTORY = sql.SQL(
    "SELECT {columns} FROM readings_between(%s, %s) r"
    " JOIN metrics m ON m.id = r.metric_id"
    " JOIN devices d ON d.id = r.device_id"
    " WHERE d.device_class = %s AND m.device_class = %s AND m.name = ANY(%s)"
    " AND r.ts >= %s AND r.ts < %s"
    " AND NOT EXISTS (SELECT 1 FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[])"
    "   AS x (d, s, e) WHERE x.d = r.device_id AND r.ts >= x.s AND r.ts < x.e)"
    " GROUP BY r.device_id, r.ts ORDER BY r.device_id, r.ts"
)


def history(
    conn: Conn,
    device_class: str,
    features: Sequence[str],
    since: datetime,
    until: datetime,
    exclude: Sequence[Span] = (),
) -> NDArray[np.float64]:
    """Rows of ``features`` (NaN where a metric is missing), one per device and reading time,
    but none of a device inside one of its ``exclude`` spans."""
    known = metrics_by_class()[DeviceClass(device_class)]
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ConfigError(
            f"features of {device_class}",
            f"{unknown} are not metrics of the class: {sorted(known)}",
        )
    query = _HISTORY.format(columns=sql.SQL(", ").join([_PIVOT_COLUMN] * len(features)))
    params = (
        *features,
        since,
        until,
        device_class,
        device_class,
        list(features),
        since,
        until,
        [s.device_id for s in exclude],
        [_dt(s.start) for s in exclude],
        [_dt(s.end) for s in exclude],
    )
    rows = conn.execute(query, params).fetchall()
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(features))


def train_from_history(
    conn: Conn,
    device_class: str,
    since: datetime,
    until: datetime,
    *,
    features: Sequence[str] | None = None,
    trained_at: datetime | None = None,
    components: int = 6,
    quantile: float = 0.999,
    exclude: Sequence[Span] = (),
    min_rows: int = 20,
) -> Model:
    """Train on ``[since, until)`` of every device of the class, ``exclude`` left out; the data
    should be normal. Fewer than ``min_rows`` complete rows is a ``ConfigError``."""
    names = tuple(features or DEFAULT_FEATURES.get(device_class, ()))
    if not names:
        raise ConfigError(
            f"features of {device_class}", "no default feature list; give one with features="
        )
    x = history(conn, device_class, names, since, until, exclude)
    complete = int(np.isfinite(x).all(axis=1).sum())
    if complete < max(min_rows, 20):
        raise ConfigError(
            f"training {device_class}",
            f"{complete} complete rows of {list(names)} between {since} and {until}; "
            "widen the window or check that these devices report every feature",
        )
    return train(
        x,
        names,
        trained_at=trained_at or datetime.now(UTC),
        device_class=device_class,
        components=components,
        quantile=quantile,
    )


def save(conn: Conn, model: Model, *, activate: bool = True) -> int:
    """Store ``model``; with ``activate`` it replaces the class's active version. Returns its id."""
    with conn.transaction():
        if activate:
            conn.execute(
                "UPDATE detector_models SET active = false WHERE device_class = %s AND active",
                (model.device_class,),
            )
        row = conn.execute(
            "INSERT INTO detector_models (device_class, version, features, threshold, blob, active)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (
                model.device_class,
                model.version,
                list(model.features),
                model.threshold,
                model.to_bytes(),
                activate,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def latest(conn: Conn, device_class: str, known_version: str | None) -> Model | None:
    """The class's active model if it is not ``known_version`` (a newer one, or a rollback)."""
    row = conn.execute(
        "SELECT blob FROM detector_models"
        " WHERE device_class = %s AND active AND version IS DISTINCT FROM %s",
        (device_class, known_version),
    ).fetchone()
    return None if row is None else Model.from_bytes(bytes(row[0]))


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def active_trained_at(conn: Conn, device_class: str) -> float | None:
    """When the class's active model was trained (epoch seconds); None: no active model."""
    row = conn.execute(
        "SELECT blob FROM detector_models WHERE device_class = %s AND active", (device_class,)
    ).fetchone()
    return None if row is None else Model.from_bytes(bytes(row[0])).trained_at.timestamp()


def alarm_spans(conn: Conn, device_class: str, since: datetime, until: datetime) -> list[Span]:
    """Every alarm of the class's devices overlapping ``[since, until)``, from its opening to
    its clearing (``until`` while open): whatever the detector, not normal operation."""
    rows = conn.execute(
        "SELECT a.device_id, extract(epoch FROM a.opened_at)::float8,"
        " extract(epoch FROM coalesce(a.cleared_at, %(until)s))::float8"
        " FROM alarms a JOIN devices d ON d.id = a.device_id"
        " WHERE d.device_class = %(cls)s AND a.opened_at < %(until)s"
        " AND coalesce(a.cleared_at, %(until)s) >= %(since)s ORDER BY a.device_id, a.opened_at",
        {"cls": device_class, "since": since, "until": until},
    ).fetchall()
    return [Span(int(d), float(s), float(e)) for d, s, e in rows]


def false_alarms(
    conn: Conn, device_class: str, code: str, since: datetime, until: datetime
) -> tuple[int, float]:
    """(alarms of entry ``code`` opened in ``[since, until)`` judged false, device-days
    watched). False: its work order closed as a false alarm, or the alarm recovered on its own
    before anyone responded. Device-days: the class's active devices times the window."""
    row = conn.execute(
        "SELECT count(*) FROM alarms a LEFT JOIN work_orders w ON w.alarm_id = a.id"
        " JOIN devices d ON d.id = a.device_id"
        " WHERE d.device_class = %(cls)s AND a.event_code = %(code)s"
        " AND a.opened_at >= %(since)s AND a.opened_at < %(until)s"
        " AND NOT device_in_maintenance(a.device_id, a.opened_at)"  # a drill is not a false alarm
        " AND (w.status = 'false_alarm'"
        "  OR (a.cleared_reason = 'recovered' AND w.responded_at IS NULL))",
        {"cls": device_class, "code": code, "since": since, "until": until},
    ).fetchone()
    devices = conn.execute(
        "SELECT count(*) FROM devices WHERE device_class = %s AND active", (device_class,)
    ).fetchone()
    assert row is not None and devices is not None
    return int(row[0]), int(devices[0]) * (until - since).total_seconds() / DAY_S
