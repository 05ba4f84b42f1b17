"""Old data goes by whole chunks, on the Apache edition of TimescaleDB too."""

from __future__ import annotations

from core.db import Conn
from ingest.store import drop_old_chunks


def test_drop_old_chunks_keeps_recent_readings(db: Conn) -> None:
    db.execute("TRUNCATE readings, rejects")
    db.execute(
        "INSERT INTO readings (ts, device_id, metric_id, value)"
        " SELECT now() - make_interval(days => d), 1, 301, d FROM generate_series(0, 40) d"
    )
    db.execute(
        "INSERT INTO rejects (received_at, topic, reason, detail, payload, payload_size)"
        " SELECT now() - make_interval(days => d), 't', 'malformed', 'x', '', 0 FROM generate_series(0, 40) d"
    )
    license_ = db.execute("SHOW timescaledb.license").fetchone()
    assert license_ is not None
    dropped = drop_old_chunks(db, retention_days=10, rejects_retention_days=20)
    assert dropped > 0
    (oldest,) = db.execute("SELECT max(value) FROM readings").fetchone() or (None,)
    assert oldest is not None and 9 <= oldest <= 11, (
        "chunks older than 10 days are gone, newer ones stay"
    )
    (oldest_reject,) = db.execute(
        "SELECT extract(day FROM now() - min(received_at)) FROM rejects"
    ).fetchone() or (None,)
    assert oldest_reject is not None and 19 <= oldest_reject <= 21
