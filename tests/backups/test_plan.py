"""Backups' planning (pure): pgBackRest's configuration and command lines, the recovery target,
what of the state directory goes into the files archive, the schedule, pgBackRest's info."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

import pytest

from backups.catalogue import parse_info
from backups.plan import (
    Cluster,
    Repository,
    Retention,
    archive_settings,
    backup_args,
    choose_files,
    cron_file,
    file_sources,
    parse_target,
    pgbackrest_conf,
    restore_args,
    state_excluded,
    systemd_units,
)
from core.errors import ConfigError

REPO = Repository(Path("/srv/backups/shouwang repo"))
CLUSTER = Cluster(
    Path("/var/lib/pg"),
    54329,
    Path("/var/lib/pg"),
    "shouwang",
    "postgres",
    Path("/usr/lib/postgresql/15/bin"),
    15,
)


def test_the_configuration_names_the_cluster_and_the_repository() -> None:
    conf = pgbackrest_conf(REPO, CLUSTER, Retention(full=3, diff=5))
    lines = conf.splitlines()
    assert "[shouwang]" in lines
    for expected in (
        "repo1-path=/srv/backups/shouwang repo/pgbackrest",
        "repo1-retention-full=3",
        "repo1-retention-diff=5",
        "pg1-path=/var/lib/pg",
        "pg1-port=54329",
        "pg1-socket-path=/var/lib/pg",
        "pg1-user=shouwang",
        "lock-path=/srv/backups/shouwang repo/run",
    ):
        assert expected in lines
    assert "password" not in conf.lower()


def test_the_archive_command_survives_the_shell() -> None:
    s = archive_settings(REPO, 30)
    assert s["archive_mode"] == "on" and s["archive_timeout"] == "30s"
    argv = shlex.split(s["archive_command"])
    assert argv == [
        "pgbackrest",
        "--config=/srv/backups/shouwang repo/pgbackrest.conf",
        "--stanza=shouwang",
        "archive-push",
        "%p",
    ]


def test_backup_and_restore_arguments() -> None:
    assert backup_args("full") == ["--type=full", "backup"]
    with pytest.raises(ConfigError, match="full, diff or incr"):
        backup_args("weekly")  # type: ignore[arg-type]
    assert restore_args(None, None, False) == ["restore"]
    t = datetime(2026, 12, 1, 16, 30, 5, 120000, tzinfo=timezone(timedelta(hours=8)))
    assert restore_args(t, "20261201-080416F", True) == [
        "--type=time",
        "--target=2026-12-01 08:30:05.120000+00",
        "--target-action=promote",
        "--set=20261201-080416F",
        "--delta",
        "restore",
    ]


def test_a_target_needs_its_time_zone() -> None:
    assert parse_target("2026-12-01T08:30:00Z") == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert parse_target("2026-12-01 16:30:00+08:00") == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    with pytest.raises(ConfigError, match="time zone"):
        parse_target("2026-12-01T08:30:00")
    with pytest.raises(ConfigError, match="ISO 8601"):
        parse_target("yesterday")


@pytest.mark.parametrize(
    ("path", "out"),
    [
        ("shouwang.env", False),
        ("tls/ca.key", False),
        ("mosquitto/passwd", False),
        ("mosquitto/acl", False),
        ("device-secrets.json", False),
        ("pg", True),
        ("pg/base/1/1234", True),
        ("mosquitto/data/mosquitto.db", True),
        ("mosquitto/mosquitto.pid", True),
        ("apt-src/build.log", True),
        ("backups/files/x.tar", True),
        ("mosquitto/passwd.tmp", True),
    ],
)
def test_what_of_the_state_directory_is_archived(path: str, out: bool) -> None:
    assert state_excluded(PurePosixPath(path)) is out


def test_files_outside_the_state_directory_are_added_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "etc"
    sources = file_sources(
        state_dir=state,
        broker_files=(state / "mosquitto" / "passwd", elsewhere / "acl"),
        ca_file=state / "tls" / "ca.crt",
        settings_files=[elsewhere / "list.yaml"],
        provisioning=[tmp_path / "provisioning"],
        extra=[tmp_path / ".env"],
    )
    assert [s.arcname for s in sources] == [
        "state",
        "broker/acl",
        "settings-files/0/list.yaml",
        "provisioning/0/provisioning",
        "extra/0/.env",
    ]


def test_the_files_archive_restored_with_a_target_is_the_last_before_it() -> None:
    t0 = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
    sets = [("A", t0), ("B", t0 + timedelta(days=1)), ("C", t0 + timedelta(days=2))]
    assert choose_files(sets, None) == "C"
    assert choose_files(sets, t0 + timedelta(days=1, hours=5)) == "B"
    assert choose_files(sets, t0 - timedelta(hours=1)) is None
    assert choose_files([], None) is None


def test_the_schedule() -> None:
    cron = cron_file(Path("/opt/shouwang/.venv/bin/shouwang"), REPO)
    jobs = [line for line in cron.splitlines() if line and not line.startswith(("#", "SHELL"))]
    assert jobs[0].startswith("30 1 * * 0 root ") and "--type full" in jobs[0]
    assert jobs[1].startswith("30 1 * * 1-6 root ") and "--type incr" in jobs[1]
    assert "'/srv/backups/shouwang repo'" in jobs[0]
    units = systemd_units(Path("/opt/shouwang/.venv/bin/shouwang"), REPO)
    assert "OnCalendar=*-*-* 01:30:00" in units["shouwang-backup.timer"]


INFO = (
    '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000003",'
    '"min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002",'
    '"stop":"000000010000000000000003"},"backrest":{"format":5,"version":"2.45"},"database":'
    '{"id":1,"repo-key":1},"error":false,"info":{"delta":23215309,"repository":{"delta":2827299,'
    '"size":2827299},"size":23215309},"label":"20261201-080416F","lsn":{"start":"0/2000028",'
    '"stop":"0/3000050"},"prior":null,"reference":null,"timestamp":{"start":1796112256,'
    '"stop":1796112258},"type":"full"}],"cipher":"none","db":[{"id":1,"repo-key":1,'
    '"system-id":7714243390972751519,"version":"15"}],"name":"shouwang","repo":[{"cipher":"none",'
    '"key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":'
    '{"held":false}},"message":"ok"}}]'
)


def test_pgbackrest_info_is_read() -> None:
    cat = parse_info(INFO)  # as pgBackRest 2.45 printed it
    assert cat.status == "ok"
    b = cat.newest
    assert b is not None and b.label == "20261201-080416F" and b.kind == "full"
    assert b.size == 23215309 and b.repo_size == 2827299
    assert cat.earliest_recovery == datetime.fromtimestamp(1796112258, UTC)
    assert (cat.wal_min, cat.wal_max) == ("000000010000000000000001", "000000010000000000000003")
    with pytest.raises(ConfigError, match="unexpected output"):
        parse_info("ERROR: [055]: unable to load info file")
