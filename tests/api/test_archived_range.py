"""The API's range query over archived readings (ingest/archive.py): the same answer as before
the day was archived, from the archive alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from core.db import Conn
from ingest.archive import archivable_chunks, archive_chunk
from tests.api.conftest import Api, Ids

T1 = datetime(2024, 6, 3, 0, 0, tzinfo=UTC)


def test_a_range_over_an_archived_day_answers_as_before(api: Api, ids: Ids, api_db: Conn) -> None:
    uid = ids.device_in("C02")
    dev = ids.devices[uid]
    floor, speed = (
        api_db.execute(
            "SELECT id FROM metrics WHERE device_class = 'elevator' AND name = %s", (n,)
        ).fetchone()[0]  # type: ignore[index]
        for n in ("floor", "speed")
    )
    api_db.execute(
        "INSERT INTO readings (ts, device_id, metric_id, value)"
        " SELECT %(t)s + make_interval(secs => s * 10), %(d)s, %(m)s, (s %% 26)::float8"
        " FROM generate_series(0, 8639) s"
        " UNION ALL SELECT %(t)s + make_interval(secs => s * 10), %(d)s, %(v)s,"
        "  round((1.75 * random())::numeric, 3)::float8 FROM generate_series(0, 8639) s",
        {"t": T1, "d": dev, "m": floor, "v": speed},
    )
    params = {
        "metric": ["floor", "speed"],
        "start": (T1 + timedelta(hours=6)).isoformat(),
        "end": (T1 + timedelta(hours=18)).isoformat(),
        "bucket_s": 600,
    }
    client = api.as_("duty_c02")
    before = client.get(f"/v1/devices/{uid}/readings", params=params)
    assert before.status_code == 200, before.text
    chunk = [c for c in archivable_chunks(api_db, T1 + timedelta(days=1)) if c[0] == T1]
    assert chunk, "the day is one chunk"
    assert archive_chunk(api_db, *chunk[0]) >= 2 * 8640
    assert api_db.execute(
        "SELECT count(*) FROM readings WHERE ts >= %s AND ts < %s", (T1, T1 + timedelta(days=1))
    ).fetchone() == (0,)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        after = client.get(f"/v1/devices/{uid}/readings", params=params)
        times.append((time.perf_counter() - t0) * 1000)
    assert after.status_code == 200, after.text
    got, want = after.json()["series"], before.json()["series"]
    assert [len(s["points"]) for s in got] == [len(s["points"]) for s in want] == [72, 72]
    for g, w in zip(got, want, strict=True):
        for p, q in zip(g["points"], w["points"], strict=True):
            assert p["avg"] == pytest.approx(q["avg"], rel=1e-12)
            assert {**p, "avg": 0} == {**q, "avg": 0}
    assert sorted(times)[2] < 100.0, times  # the API's latency target
