"""A registered pump room with past readings of its model features in the test database, for the
tests of training, versions and scheduled retraining."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np

from core.db import Conn


@contextmanager
def pump_room_with_history(
    db: Conn, code: str, ts: np.ndarray, x: np.ndarray, features: Sequence[str]
) -> Iterator[int]:
    """A pump room ``{code}-pr`` in a community ``code`` of its own, with the readings ``x``
    (rows at times ``ts``, one column per feature); its id. Removed afterwards, with its
    alarms."""
    (region,) = db.execute(
        "INSERT INTO regions (code, kind, name_zh) VALUES (%s, 'county', '测试县') RETURNING id",
        (f"{code}-county",),
    ).fetchone() or (0,)
    (community,) = db.execute(
        "INSERT INTO communities (code, region_id, name_zh) VALUES (%s, %s, '测试小区') RETURNING id",
        (code, region),
    ).fetchone() or (0,)
    (device,) = db.execute(
        "INSERT INTO devices (uid, device_class, community_id) VALUES (%s, 'pump_room', %s)"
        " RETURNING id",
        (f"{code}-pr", community),
    ).fetchone() or (0,)
    ids: dict[str, int] = dict(
        db.execute("SELECT name, id FROM metrics WHERE device_class = 'pump_room'").fetchall()
    )
    with (
        db.cursor() as cur,
        cur.copy("COPY readings (ts, device_id, metric_id, value) FROM STDIN") as cp,
    ):
        for t, row in zip(ts.tolist(), x.tolist(), strict=True):
            when = datetime.fromtimestamp(t, UTC)
            for name, v in zip(features, row, strict=True):
                cp.write_row((when, device, ids[name], v))
    try:
        yield device
    finally:
        db.execute("DELETE FROM alarms WHERE device_id = %s", (device,))
        db.execute("DELETE FROM readings WHERE device_id = %s", (device,))
        db.execute("DELETE FROM devices WHERE id = %s", (device,))
        db.execute("DELETE FROM communities WHERE id = %s", (community,))
        db.execute("DELETE FROM regions WHERE id = %s", (region,))
