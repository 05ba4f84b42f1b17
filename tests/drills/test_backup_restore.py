"""Drill: back up, lose the server, restore. On a scratch PostgreSQL + TimescaleDB cluster of
its own (never the shared one) and a scratch state directory: migrate, seed a small county,
store readings through ingest from devices on a broker whose files the registry wrote, open an
alarm and a work order, rotate a device's credential and create a stage's login role; then
``shouwang backup setup`` and ``create``; record every table's count and checksum and every
state file's hash; stop the cluster and delete its data directory, the state directory and the
broker. ``shouwang backup restore --start`` must bring back every row (same checksums), every
file (the settings with the ack secret, the TLS CA, the broker's files), the login role; a fresh
Mosquitto on the restored files lets the device in with its credential of before, and its new
reading is stored. Then point-in-time recovery: restored to a moment between two readings, the
cluster has the first and not the second."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from core.db import Conn, connect
from core.settings import Settings
from core.wire import Channel, device_topic, encode_sample
from simulators.county import County
from simulators.seed import seed
from tests.background import running
from tests.conftest import (
    ADMIN_PASSWORD,
    ANALYTICS_PASSWORD,
    INGEST_PASSWORD,
    NOTIFY_PASSWORD,
    ROOT,
    SMALL,
    Broker,
    free_port,
    make_certificates,
    shouwang,
    start_broker,
)
from tests.mqtt_helpers import peer

PG_MAJOR = (
    (ROOT / ".state" / "pg_major").read_text().strip()
    if (ROOT / ".state" / "pg_major").exists()
    else "15"
)
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
DB_PASSWORD = "drill-db-password"
ACK_SECRET = "drill-ack-secret"
LOGIN_PASSWORD = "drill-ingest-login-password"
GOOD = {"floor": 3, "speed": 1.0, "door_state": 0, "car_status": 1}


def as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@dataclass
class Scratch:
    """A cluster in a directory of its own (reachable by the postgres user), its state
    directory, its backup repository and its broker."""

    root: Path
    port: int
    state: Path
    broker: Broker | None = None

    @property
    def data(self) -> Path:
        return self.root / "pg"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def url(self) -> str:
        return f"postgresql://shouwang:{DB_PASSWORD}@127.0.0.1:{self.port}/shouwang"

    def env(self) -> dict[str, str]:
        """A ``shouwang`` subprocess's environment: only the scratch state directory's settings
        (nothing of the shared stack's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOUWANG_")}
        return env | {"SHOUWANG_STATE_DIR": str(self.state), "SHOUWANG_LOG_FORMAT": "human"}

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            shouwang(*args),
            env=self.env() | (env or {}),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=180,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"shouwang {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    def settings(self) -> Settings:
        return Settings(_env_file=self.state / "shouwang.env", state_dir=self.state)

    def pg_ctl(self, action: str) -> None:
        subprocess.run(
            as_postgres(
                *(
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                ),
                *("-w", "-t", "60", "-m", "fast", action),
            ),
            check=True,
            capture_output=True,
            cwd="/",
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def init_cluster(s: Scratch) -> None:
    """initdb as scripts/stack.sh does (TimescaleDB preloaded, scram), on the scratch port."""
    pwfile = s.root / "pw"
    pwfile.write_text(DB_PASSWORD)
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(s.root, pg.pw_uid, pg.pw_gid)
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
    subprocess.run(
        as_postgres(
            *(str(PG_BIN / "initdb"), "-D", str(s.data), "-U", "shouwang", f"--pwfile={pwfile}"),
            *("--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8"),
            "--locale=C.UTF-8",
        ),
        check=True,
        capture_output=True,
        cwd="/",
    )
    with (s.data / "postgresql.conf").open("a") as f:
        f.write(
            f"listen_addresses = '127.0.0.1'\nport = {s.port}\n"
            f"unix_socket_directories = '{s.data}'\nshared_preload_libraries = 'timescaledb'\n"
            "timescaledb.telemetry_level = off\ntimezone = 'UTC'\nshared_buffers = 128MB\n"
        )
    s.pg_ctl("start")
    with psycopg.connect(s.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as c:
        c.execute("CREATE DATABASE shouwang")


def write_state(s: Scratch, mqtt_port: int) -> None:
    """The state directory as the local stack writes it: the settings env file (0600) with the
    database URL, broker passwords and the ack secret; the TLS CA and certificate."""
    s.state.mkdir(parents=True)
    make_certificates(s.state / "tls")
    env = s.state / "shouwang.env"
    env.write_text(
        f"SHOUWANG_DATABASE_URL={s.url}\nSHOUWANG_MQTT_HOST=127.0.0.1\n"
        f"SHOUWANG_MQTT_PORT={mqtt_port}\nSHOUWANG_MQTT_INGEST_PASSWORD={INGEST_PASSWORD}\n"
        f"SHOUWANG_MQTT_ADMIN_PASSWORD={ADMIN_PASSWORD}\n"
        f"SHOUWANG_MQTT_ANALYTICS_PASSWORD={ANALYTICS_PASSWORD}\n"
        f"SHOUWANG_NOTIFY_MQTT_PASSWORD={NOTIFY_PASSWORD}\n"
        f"SHOUWANG_NOTIFY_ACK_SECRET={ACK_SECRET}\n"
        f"SHOUWANG_MQTT_CA_FILE={s.state / 'tls' / 'ca.crt'}\n"
    )
    env.chmod(0o600)


def stop_broker(s: Scratch) -> None:
    if s.broker is not None:
        s.broker.proc.send_signal(signal.SIGTERM)
        s.broker.proc.wait(10)
        s.broker = None


def publish_and_store(s: Scratch, uid: str, password: str, stamps: list[int]) -> None:
    """Run an ingest worker on the scratch services while device ``uid`` publishes a reading at
    each of ``stamps`` (ms) with ``password``; wait until every one is stored."""
    from ingest.__main__ import config_from
    from ingest.consumer import Consumer

    assert s.broker is not None
    settings = s.settings()
    consumer = Consumer(config_from(settings, f"drill-ingest-{time.monotonic_ns()}"), s.url)
    try:
        with running(consumer.run, consumer.stop, "ingest"):
            assert consumer._connected.wait(10), "ingest did not connect"
            dev = peer(s.broker.host, s.broker.port, uid, password)
            assert dev.connect_rc is not None and not dev.connect_rc.is_failure, dev.connect_rc
            mids = [
                dev.publish(device_topic(uid, Channel.TELEMETRY), encode_sample(t, GOOD))
                for t in stamps
            ]
            dev.wait_acks(mids)
            dev.close()
            deadline = time.monotonic() + 20
            with connect(s.url, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    if stored(conn, uid, stamps) == len(stamps):
                        break
                    time.sleep(0.1)
                assert stored(conn, uid, stamps) == len(stamps), "ingest did not store them"
    finally:
        consumer.conn.close()


def stored(conn: Conn, uid: str, stamps: list[int]) -> int:
    row = conn.execute(
        "SELECT count(DISTINCT r.ts) FROM readings r JOIN devices d ON d.id = r.device_id"
        " WHERE d.uid = %s AND r.ts = ANY(%s)",
        (uid, [datetime.fromtimestamp(t / 1000, UTC) for t in stamps]),
    ).fetchone()
    return int(row[0]) if row else 0


def open_alarm_and_work_order(conn: Conn, device_id: int) -> None:
    opened = datetime.now(UTC) - timedelta(minutes=5)
    (alarm_id,) = conn.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
        " last_triggered_at, list_version) VALUES (%s, 'EL.TRAPPED', 'P0', 'active', 'drill',"
        " %s, %s, 'drill') RETURNING id",
        (device_id, opened, opened),
    ).fetchone() or (0,)
    conn.execute(
        "INSERT INTO work_orders (alarm_id, device_id, community_id, firm_id, maintenance_unit_id,"
        " event_code, severity, responsible_party, supervisor, status, opened_at, response_due,"
        " arrival_due, resolution_due, emergency_fund, notify_regulator, list_version)"
        " SELECT %(a)s, d.id, d.community_id, c.firm_id, d.maintenance_unit_id, 'EL.TRAPPED',"
        " 'P0', 'elevator_maintenance_unit', 'county_housing_bureau', 'occurred', %(t)s,"
        " %(t)s + interval '5 minutes', %(t)s + interval '30 minutes',"
        " %(t)s + interval '4 hours', false, false, 'drill'"
        " FROM devices d JOIN communities c ON c.id = d.community_id WHERE d.id = %(d)s",
        {"a": alarm_id, "t": opened, "d": device_id},
    )


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Every table of the schema (hypertables through their parent): (rows, md5 of them all)."""
    with connect(url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        out = {}
        for t in tables:
            row = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)),"
                f" '') FROM \"{t}\" x"
            ).fetchone()
            assert row is not None
            out[t] = (int(row[0]), str(row[1]))
    return out


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    """A running scratch cluster, migrated, with the county, readings, an alarm and a work
    order, a rotated device credential, a login role; backups set up (WAL archiving on)."""
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgbackrest is not installed; run scripts/setup.sh")
    # Under /tmp, open to the postgres user (pytest's own tmp directory is root's alone).
    root = Path(tempfile.mkdtemp(prefix="shouwang-backup-drill-"))
    root.chmod(0o755)
    s = Scratch(root, free_port(), tmp_path_factory.mktemp("drill") / "state")
    try:
        init_cluster(s)
        mqtt_port = free_port()
        write_state(s, mqtt_port)
        s.cli("db", "migrate")
        with connect(s.url, autocommit=True) as conn:
            seed(conn, SMALL, s.state / "device-secrets.json")
        s.cli("broker", "sync", "--no-reload")  # the broker's files from the registry
        s.broker = start_broker(s.state / "mosquitto", port=mqtt_port)
        yield s
    finally:
        stop_broker(s)
        if s.running():
            s.pg_ctl("stop")
        shutil.rmtree(root, ignore_errors=True)


def elevator(county: County) -> str:
    return next(d.uid for d in county.devices() if d.device_class == "elevator")


@pytest.mark.timeout(240)
def test_a_lost_server_comes_back_whole_from_its_backup(scratch: Scratch) -> None:
    s = scratch
    started = time.monotonic()
    uid = elevator(SMALL)
    # A credential issued after seeding (rotated through the CLI, which writes the broker files).
    issued = s.cli("broker", "issue", uid)
    password = issued.stdout.strip().splitlines()[0]
    now = int(time.time() * 1000)
    publish_and_store(s, uid, password, [now - 30_000 + i * 1000 for i in range(20)])
    with connect(s.url, autocommit=True) as conn:
        (device_id,) = conn.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone() or (
            0,
        )
        open_alarm_and_work_order(conn, device_id)
    s.cli(
        "db",
        "login",
        "ingest",
        "--password-env",
        "DRILL_LOGIN_PW",
        env={"DRILL_LOGIN_PW": LOGIN_PASSWORD},
    )

    setup = s.cli("backup", "setup", "--repo", str(s.repo), "--restart")
    assert "stanza ready" in setup.stderr, setup.stderr
    made = s.cli("backup", "create", "--repo", str(s.repo), "--type", "full")
    assert "backup " in made.stderr and "(full)" in made.stderr, made.stderr
    tars = list((s.repo / "files").glob("*.tar"))
    assert len(tars) == 1 and tars[0].stat().st_mode & 0o777 == 0o600
    assert s.cli("backup", "check", "--repo", str(s.repo)).returncode == 0
    listing = s.cli("backup", "list", "--repo", str(s.repo)).stderr
    assert "full" in listing and "files ok" in listing, listing

    before_db = fingerprint(s.url)
    for table in ("readings", "alarms", "work_orders", "mqtt_accounts", "devices"):
        assert before_db[table][0] > 0, f"the drill put nothing in {table}"
    kept = {
        n for n in file_hashes(s.state) if not n.startswith(("mosquitto/data", "mosquitto/mosq"))
    }
    before_files = {n: h for n, h in file_hashes(s.state).items() if n in kept}
    assert {"shouwang.env", "tls/ca.crt", "mosquitto/passwd", "mosquitto/acl"} <= set(kept)
    backed_up = time.monotonic()

    # The disaster: the server, its data directory, the state directory and the broker are gone.
    restore = s.cli("backup", "restore", "--repo", str(s.repo), check=False)
    assert restore.returncode != 0 and "never overwrites a running cluster" in restore.stderr, (
        restore.stderr
    )
    stop_broker(s)
    s.pg_ctl("stop")
    shutil.rmtree(s.data)
    shutil.rmtree(s.state)
    # Restore takes only the repository: the settings come back with the files.
    s.cli("backup", "restore", "--repo", str(s.repo), "--start")
    restored = time.monotonic()

    assert fingerprint(s.url) == before_db, "a table differs after the restore"
    after_files = {n: h for n, h in file_hashes(s.state).items() if n in kept}
    assert after_files == before_files
    assert (s.state / "shouwang.env").stat().st_mode & 0o777 == 0o600
    assert s.settings().notify_ack_secret == SecretStr(ACK_SECRET)
    # The stage's login role is cluster-wide: it came back with the physical backup.
    with psycopg.connect(
        f"postgresql://shouwang_ingest_login:{LOGIN_PASSWORD}@127.0.0.1:{s.port}/shouwang"
    ) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    # The platform resumes: schema current, and the device gets in with its old credential.
    s.cli("db", "migrate")
    s.broker = start_broker(s.state / "mosquitto", port=s.settings().mqtt_port)
    again = int(time.time() * 1000)
    publish_and_store(s, uid, password, [again])
    print(
        f"backup drill: data and backup {backed_up - started:.1f} s,"
        f" restore {restored - backed_up:.1f} s, total {time.monotonic() - started:.1f} s"
    )


@pytest.mark.timeout(180)
def test_point_in_time_recovery_stops_between_two_readings(scratch: Scratch) -> None:
    s = scratch
    if not (s.repo / "cluster.json").exists():
        assert "stanza ready" in s.cli("backup", "setup", "--repo", str(s.repo), "--restart").stderr
    s.cli("backup", "create", "--repo", str(s.repo), "--type", "incr")
    uid = elevator(SMALL)
    with connect(s.url, autocommit=True) as conn:
        (device_id,) = conn.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone() or (
            0,
        )
        (metric_id,) = conn.execute("SELECT id FROM metrics WHERE name = 'floor'").fetchone() or (
            0,
        )
        first = datetime.now(UTC) - timedelta(seconds=10)
        second = first + timedelta(seconds=1)

        def insert(ts: datetime) -> None:
            conn.execute(
                "INSERT INTO readings (ts, device_id, metric_id, value) VALUES (%s, %s, %s, 7)",
                (ts, device_id, metric_id),
            )

        insert(first)
        time.sleep(0.5)
        (between,) = conn.execute("SELECT now()").fetchone() or (datetime.now(UTC),)
        time.sleep(0.5)
        insert(second)
        # Both are in archived WAL (as archive_timeout would have it within a minute).
        conn.execute("SELECT pg_switch_wal()")
    s.cli("backup", "check", "--repo", str(s.repo))  # waits until the segment is archived
    stop_broker(s)
    s.pg_ctl("stop")
    shutil.rmtree(s.data)
    s.cli(
        "backup",
        "restore",
        "--repo",
        str(s.repo),
        "--target",
        between.isoformat(),
        "--no-files",
        "--start",
    )
    with connect(s.url, autocommit=True) as conn:
        got = {
            r[0]
            for r in conn.execute(
                "SELECT ts FROM readings WHERE device_id = %s AND metric_id = %s AND ts IN (%s, %s)",
                (device_id, metric_id, first, second),
            ).fetchall()
        }
    assert got == {first}, f"restored to {between}: found {sorted(got)}"
