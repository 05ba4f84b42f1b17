"""A gateway run end to end, for the gateway's tests: the demo county's C01-GW and its five
Modbus devices (three residual-current monitors, two water-quality analysers) on one Modbus TCP
server, the gateway as a ``shouwang gateway run`` process, and the check that every sample it
collected is stored exactly once.

"Collected" is what was committed to the gateway's buffer: a trigger added to the buffer file
copies every committed entry into a journal the gateway knows nothing about.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from core.db import Conn
from gateway.store import Store
from simulators.county import County
from sites.converter import Function
from sites.profiles import shipped_profiles
from tests.conftest import Broker, shouwang, start_broker
from tests.gateway.conftest import ModbusSite, site_config
from tests.gateway.modbus_servers import words_for

PROFILES = shipped_profiles()
DEVICES = ["C01-B01-EF1", "C01-B01-EF2", "C01-B01-EF3", "C01-WQ1", "C01-WQ2"]
MODELS = ["residual-current-monitor"] * 3 + ["water-quality-analyser"] * 2
JOURNAL = """
CREATE TABLE journal (seq INTEGER, kind INTEGER, body BLOB);
CREATE TRIGGER journal_entries AFTER INSERT ON entries
BEGIN INSERT INTO journal VALUES (new.seq, new.kind, new.body); END;
"""


def units() -> dict[int, dict[tuple[Function, int], int]]:
    ef, wq = PROFILES["residual-current-monitor"], PROFILES["water-quality-analyser"]
    out = {
        i + 1: words_for(ef, {"residual_current": 100 + i, "cable_temp": 300 + i}) for i in range(3)
    }
    for i in (4, 5):
        out[i] = words_for(
            wq, {"residual_chlorine": 300 + i, "turbidity": 0.5, "ph": 700 + i, "water_temp": 150}
        )
    return out


def prepare(
    db: Conn,
    tmp_path: Path,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    site: ModbusSite,
    *,
    max_bytes: int = 8 * 1024 * 1024,
) -> tuple[Path, Path, dict[str, int]]:
    """The site config, the buffer (with its journal) and the devices' ids; their earlier rows
    (and the gateway's state) are removed."""
    devices = [
        (uid, m, site.port, i + 1) for i, (uid, m) in enumerate(zip(DEVICES, MODELS, strict=True))
    ]
    path = site_config(tmp_path, broker, county, devices, max_bytes=max_bytes)
    buffer = tmp_path / "buffer.db"
    Store(buffer, 1).close()
    with sqlite3.connect(buffer) as j:
        j.executescript(JOURNAL)
    rows = db.execute("SELECT uid, id FROM devices WHERE uid = ANY(%s)", (DEVICES,)).fetchall()
    ids = {str(u): int(i) for u, i in rows}
    db.execute("DELETE FROM readings WHERE device_id = ANY(%s)", (list(ids.values()),))
    db.execute("DELETE FROM device_status WHERE device_id = ANY(%s)", (list(ids.values()),))
    db.execute("DELETE FROM gateway_state")
    return path, buffer, ids


def start(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        return subprocess.Popen(
            shouwang("gateway", "run", str(config)), env=env, stdout=f, stderr=f
        )


def own_broker(broker: Broker, tmp_path: Path) -> tuple[Path, Broker]:
    """A broker of the test's own, to stop and start, with the county's accounts as the session
    broker has them; its folder, to start it again in."""
    own = tmp_path / "broker"
    own.mkdir()
    for name in ("passwd", "acl"):
        shutil.copy(broker.directory / name, own / name)
    return own, start_broker(own)


def dropped(buffer: Path) -> int:
    """The entries the buffer's byte limit pushed out, as the buffer counts them."""
    with sqlite3.connect(buffer) as db:
        row = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0


def held(buffer: Path) -> int:
    with sqlite3.connect(buffer) as db:
        return int(db.execute("SELECT count(*) FROM entries").fetchone()[0])


def journal(buffer: Path) -> list[tuple[int, dict[str, object]]]:
    with sqlite3.connect(buffer) as db:
        return [(int(k), orjson.loads(b)) for k, b in db.execute("SELECT kind, body FROM journal")]


def wait_for_more(buffer: Path, n: int, gw: subprocess.Popen[bytes], log: Path) -> None:
    """Until the gateway has collected ``n`` more entries."""
    target = len(journal(buffer)) + n
    deadline = time.monotonic() + 20
    while len(journal(buffer)) < target:
        assert gw.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the gateway collects nothing"
        time.sleep(0.05)


def drain_and_stop(
    gw: subprocess.Popen[bytes], buffer: Path, site: ModbusSite, log: Path, within_s: float = 30
) -> None:
    """Silence the devices (the gateway reports them offline), wait until the platform has
    confirmed everything, and stop the gateway cleanly."""
    site.stop()
    deadline = time.monotonic() + within_s
    while held(buffer) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held(buffer) == 0, f"the buffer did not drain:\n{log.read_text()[-3000:]}"
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(30) == 0, log.read_text()[-3000:]


def gateway_state(db: Conn) -> dict[str, object]:
    """What the platform holds of C01-GW's own state, once it has the gateway's last word (its
    clean stop, which ingest stores a moment after the gateway has exited)."""
    deadline = time.monotonic() + 10
    while True:
        cur = db.execute(
            "SELECT s.* FROM gateway_state s JOIN gateways g ON g.id = s.gateway_id"
            " WHERE g.uid = 'C01-GW'"
        )
        row = cur.fetchone()
        assert cur.description is not None
        state = (
            {} if row is None else dict(zip([c.name for c in cur.description], row, strict=True))
        )
        if state.get("reason") == "shutdown" or time.monotonic() > deadline:
            assert row is not None, "the platform has no state of the gateway"
            return state
        time.sleep(0.1)


def assert_stored_once(db: Conn, buffer: Path, ids: dict[str, int], min_samples: int) -> int:
    """Every collected sample stored exactly once with its value, every status too, nothing
    else; returns how many samples were collected."""
    collected = journal(buffer)
    samples = [b for k, b in collected if k == 0]
    statuses = [b for k, b in collected if k == 2]
    assert len(samples) > min_samples, "too few polls to prove anything"
    expected = {
        (ids[str(s["device"])], name, int(str(s["ts"]))): float(v)
        for s in samples
        for name, v in s["values"].items()  # type: ignore[attr-defined]
    }
    rows = db.execute(
        "SELECT r.device_id, m.name, (extract(epoch FROM r.ts) * 1000)::bigint, r.value"
        " FROM readings r JOIN metrics m ON m.id = r.metric_id WHERE r.device_id = ANY(%s)",
        (list(ids.values()),),
    ).fetchall()
    stored = [((int(d), str(n), int(t)), float(v)) for d, n, t, v in rows]
    assert len(stored) == len({k for k, _ in stored}), "a reading was stored twice"
    assert dict(stored) == pytest.approx(expected)
    # Each device ends offline (its server stopped before the gateway); a loaded machine may
    # also time a poll out earlier, which is a real offline/online pair and is stored like any.
    last: dict[str, object] = {}
    for s in statuses:
        last[str(s["device"])] = s["online"]
    assert last == dict.fromkeys(DEVICES, False)
    n_status = db.execute(
        "SELECT count(*) FROM device_status WHERE device_id = ANY(%s)", (list(ids.values()),)
    ).fetchone()
    assert n_status is not None
    assert n_status[0] == len(statuses)
    return len(samples)
