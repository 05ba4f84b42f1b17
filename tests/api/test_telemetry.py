"""Telemetry through the API: a device's latest values and presence, and time-bucketed ranges
(TimescaleDB ``time_bucket``) of its readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.db import Conn
from tests.api.conftest import Api, Ids

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_latest_values_and_buckets_of_a_range(api: Api, ids: Ids, api_db: Conn) -> None:
    uid = ids.device_in("C01", n=1)
    dev = ids.devices[uid]
    floor, speed = (
        api_db.execute(
            "SELECT id FROM metrics WHERE device_class = 'elevator' AND name = %s", (n,)
        ).fetchone()[0]  # type: ignore[index]
        for n in ("floor", "speed")
    )
    # Floors 0..11 every 10 s for two minutes; speed once.
    rows = [(T0 + timedelta(seconds=10 * i), dev, floor, float(i)) for i in range(12)]
    rows.append((T0, dev, speed, 1.5))
    with api_db.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (ts, device_id, metric_id, value) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            rows,
        )
        cur.executemany(
            "INSERT INTO latest_readings (device_id, metric_id, ts, value) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_id, metric_id) DO UPDATE SET ts = excluded.ts, value = excluded.value",
            [(dev, floor, rows[11][0], 11.0), (dev, speed, T0, 1.5)],
        )
        cur.execute(
            "INSERT INTO device_presence (device_id, last_seen, online) VALUES (%s, %s, true)"
            " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen",
            (dev, rows[11][0]),
        )
    latest = api.as_("duty_c01").get(f"/v1/devices/{uid}/latest").json()
    assert latest["online"] is True
    assert {r["metric"]: r["value"] for r in latest["readings"]} == {"floor": 11.0, "speed": 1.5}
    assert {r["unit"] for r in latest["readings"] if r["metric"] == "speed"} == {"m/s"}
    page = api.as_("duty_c01").get(
        "/v1/telemetry/latest", params={"device_class": "elevator", "limit": 500}
    )
    assert uid in [d["uid"] for d in page.json()["items"]]

    r = api.as_("firm_f01").get(
        f"/v1/devices/{uid}/readings",
        params={
            "metric": ["floor", "speed"],
            "start": T0.isoformat(),
            "end": (T0 + timedelta(minutes=2)).isoformat(),
            "bucket_s": 60,
        },
    )
    assert r.status_code == 200, r.text
    floor_series, speed_series = r.json()["series"]
    assert [
        (p["min"], p["max"], p["avg"], p["last"], p["count"]) for p in floor_series["points"]
    ] == [
        (0.0, 5.0, 2.5, 5.0, 6),
        (6.0, 11.0, 8.5, 11.0, 6),
    ]
    assert [p["count"] for p in speed_series["points"]] == [1]


def test_a_range_is_bounded_and_checked(api: Api, ids: Ids) -> None:
    uid = ids.device_in("C01")
    client = api.as_("firm_f01")
    base = f"/v1/devices/{uid}/readings"
    unknown = client.get(base, params={"metric": "pressure"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["fields"][0]["field"] == "query.metric[0]"
    assert "floor" in unknown.json()["error"]["fields"][0]["message"]
    too_many = client.get(
        base,
        params={
            "metric": "floor",
            "start": "2020-01-01T00:00:00Z",
            "end": "2024-01-01T00:00:00Z",
            "bucket_s": 1,
        },
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["fields"][0]["field"] == "query.bucket_s"
    backwards = client.get(
        base,
        params={"metric": "floor", "start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
