"""Analytics: the multivariate models in the database (I/O shell around ``analytics.multivariate``).

``train_from_history`` reads a class's readings, one row per device and instant, and trains;
``save`` stores a version and makes it the active one; ``latest`` is what the running analytics
polls to pick a newly activated version up without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from psycopg import sql

from analytics.multivariate import DEFAULT_FEATURES, Model, train
from core.catalogue import DeviceClass, metrics_by_class
from core.db import Conn
from core.errors import ConfigError

_PIVOT_COLUMN = sql.SQL("max(r.value) FILTER (WHERE m.name = %s)")
_HISTORY = sql.SQL(
    "SELECT {columns} FROM readings r"
    " JOIN metrics m ON m.id = r.metric_id"
    " JOIN devices d ON d.id = r.device_id"
    " WHERE d.device_class = %s AND m.device_class = %s AND m.name = ANY(%s)"
    " AND r.ts >= %s AND r.ts < %s"
    " GROUP BY r.device_id, r.ts ORDER BY r.device_id, r.ts"
)


def history(
    conn: Conn,
    device_class: str,
    features: Sequence[str],
    since: datetime,
    until: datetime,
) -> NDArray[np.float64]:
    """Rows of ``features`` (NaN where a metric is missing), one per device and reading time."""
    known = metrics_by_class()[DeviceClass(device_class)]
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ConfigError(
            f"features of {device_class}",
            f"{unknown} are not metrics of the class: {sorted(known)}",
        )
    query = _HISTORY.format(columns=sql.SQL(", ").join([_PIVOT_COLUMN] * len(features)))
    params = (*features, device_class, device_class, list(features), since, until)
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
) -> Model:
    """Train on ``[since, until)`` of every device of the class; the data should be normal."""
    names = tuple(features or DEFAULT_FEATURES.get(device_class, ()))
    if not names:
        raise ConfigError(
            f"features of {device_class}", "no default feature list; give one with features="
        )
    x = history(conn, device_class, names, since, until)
    complete = int(np.isfinite(x).all(axis=1).sum())
    if complete < 20:
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
