"""Storage at rest: the benchmark. A simulated span (default a week) of one demo community on the
data clock, every device sampled on its reporting interval by the simulator's behaviour models and
written with ingest's binary COPY; then ingest's archive pass (ingest/archive.py) and what each
table takes per reading (ingest/footprint.py), with the time range queries the API and the
rollup make over archived days. ``python -m bench.storage`` runs it in a scratch database beside
the configured one and drops it after.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.catalogue import METRICS
from core.db import Conn, connect, migrate
from core.settings import load_settings
from ingest.archive import archive_pass
from ingest.copy_format import readings_buffer
from ingest.footprint import measure, total
from ingest.store import copy_readings
from simulators.county import demo_county
from simulators.run import build_devices
from simulators.seed import seed

# The API's range query (api/routes/telemetry.py), one device and its metrics.
RANGE_QUERY = (
    "SELECT r.metric_id, time_bucket(make_interval(secs => %(b)s), r.ts) AS t, avg(r.value),"
    " min(r.value), max(r.value), last(r.value, r.ts), count(*)"
    " FROM readings_between(%(start)s, %(end)s) r"
    " WHERE r.device_id = %(d)s AND r.ts >= %(start)s AND r.ts < %(end)s"
    " GROUP BY r.metric_id, t ORDER BY r.metric_id, t"
)


def simulate(
    conn: Conn, *, now: float, days: float, step_s: float | None = None, seed_: int = 5
) -> int:
    """``days`` of readings up to ``now`` from every active device, each every ``step_s``
    seconds (default: its reporting interval), with a steady jitter per device; return how
    many readings were written."""
    rows = conn.execute(
        "SELECT d.id, d.uid, d.device_class, d.report_interval_s, g.uid, d.attributes"
        " FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id WHERE d.active ORDER BY d.id"
    ).fetchall()
    ids = {str(r[1]): int(r[0]) for r in rows}
    sims = build_devices([(str(u), str(c), int(i), g, dict(a)) for _, u, c, i, g, a in rows], seed_)
    metric_id = {(m.device_class.value, m.name): m.id for m in METRICS}
    rng = random.Random(seed_)
    written = 0
    start = now - days * 86400
    for d in sims:
        step = step_s or d.interval_s
        t = start + rng.uniform(0, step)
        ts: list[int] = []
        dev: list[int] = []
        met: list[int] = []
        val: list[float] = []
        while t < now:
            for name, v in d.behaviour.sample(t).items():
                ts.append(int(t * 1000))
                dev.append(ids[d.uid])
                met.append(metric_id[(d.device_class, name)])
                val.append(float(v))
            t += step
        buffer = readings_buffer(array("q", ts), array("i", dev), array("h", met), array("d", val))
        with conn.transaction():
            copy_readings(conn, buffer)
        written += len(ts)
    return written


def community(conn: Conn, secrets: Path) -> None:
    """One demo community (its ~110 devices), seeded."""
    seed(conn, demo_county(communities=1), secrets)


def main() -> None:  # pragma: no cover - a benchmark, run by hand
    days = float(sys.argv[1]) if len(sys.argv) > 1 else 7.0
    admin_url = load_settings().database_url
    name = "shouwang_bench_storage"
    with connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    url = make_conninfo(**params)  # type: ignore[arg-type]
    try:
        with connect(url) as conn:
            migrate(conn)
        with connect(url, autocommit=True) as conn, tempfile.TemporaryDirectory() as tmp:
            community(conn, Path(tmp) / "secrets.json")
            now = time.time()
            t0 = time.monotonic()
            n = simulate(conn, now=now, days=days)
            print(f"wrote {n:,} readings in {time.monotonic() - t0:.0f} s")
            conn.execute("VACUUM ANALYZE readings")
            before = total(measure(conn), "readings")
            t0 = time.monotonic()
            done = archive_pass(conn, now=datetime.fromtimestamp(now, UTC), after_days=2)
            spent = time.monotonic() - t0
            print(f"archived {done.readings:,} readings ({done.chunks} chunks) in {spent:.0f} s")
            conn.execute("VACUUM ANALYZE readings_archive")
            measured = measure(conn)
            for table in ("readings", "readings_archive"):
                s = total(measured, table)
                if s is not None and s.per_reading is not None:
                    print(f"{table}: {s.readings:,} readings, {s.bytes:,} B, {s.per_reading:.2f} B")
            if before is not None and before.per_reading is not None:
                print(f"before archiving: {before.per_reading:.2f} B per reading")
            end = datetime.fromtimestamp(now, UTC) - timedelta(days=3)
            (dev,) = conn.execute("SELECT min(id) FROM devices").fetchone() or (None,)
            for span, bucket in ((timedelta(hours=1), 60), (timedelta(days=1), 300)):
                args = {"b": bucket, "start": end - span, "end": end, "d": dev}
                conn.execute(RANGE_QUERY, args)
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    conn.execute(RANGE_QUERY, args).fetchall()
                    times.append((time.perf_counter() - t0) * 1000)
                print(f"API range {span} bucket {bucket} s: median {sorted(times)[2]:.1f} ms")
    finally:
        with connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
