"""Backups: what to back up and the commands that do it (pure: no file, process or database).

The backup repository (``shouwang backup --repo``; keep it on another disk or host) holds::

    cluster.json       the cluster backed up: data directory, port, socket, owner, binaries
    pgbackrest.conf    pgBackRest's configuration for it (stanza ``shouwang``)
    pgbackrest/        pgBackRest's repository: base backups (backup/) and archived WAL (archive/)
    run/               pgBackRest's lock and log files
    files/<label>.tar  the files of the backup set <label> (manifest.json first), mode 0600
    files/<label>.json its manifest again, to list and check without opening the tar

pgBackRest copies the cluster's files (physical), so TimescaleDB needs no pre- or post-restore
step, and the cluster-wide objects (the stages' and dashboards' login roles) come back with it;
the archived WAL replays to any moment after the oldest backup kept (point-in-time recovery).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from core.errors import ConfigError

STANZA: Final = "shouwang"
BackupKind = Literal["full", "diff", "incr"]
KINDS: Final[tuple[str, ...]] = ("full", "diff", "incr")


@dataclass(frozen=True, slots=True)
class Cluster:
    """The PostgreSQL cluster pgBackRest backs up and restores."""

    data_dir: Path
    port: int
    socket_dir: Path  # pgBackRest connects through the Unix socket here
    user: str  # the database superuser it connects as
    os_user: str  # the data directory's owner: pgBackRest and PostgreSQL run as it
    pg_bin: Path  # initdb, pg_ctl of the server's major version
    version: int  # the major version

    def to_json(self) -> str:
        d = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return json.dumps(d, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Cluster:
        try:
            d = json.loads(text)
            return cls(
                data_dir=Path(d["data_dir"]),
                port=int(d["port"]),
                socket_dir=Path(d["socket_dir"]),
                user=str(d["user"]),
                os_user=str(d["os_user"]),
                pg_bin=Path(d["pg_bin"]),
                version=int(d["version"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                where, f"not a cluster description ({e}); run 'shouwang backup setup' again"
            ) from None


@dataclass(frozen=True, slots=True)
class Repository:
    root: Path

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def pgbackrest(self) -> Path:
        return self.root / "pgbackrest"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def files(self) -> Path:
        return self.root / "files"

    def files_tar(self, label: str) -> Path:
        return self.files / f"{label}.tar"

    def files_manifest(self, label: str) -> Path:
        return self.files / f"{label}.json"


@dataclass(frozen=True, slots=True)
class Retention:
    """How many full backups (with everything that depends on them, WAL included) and
    differential backups pgBackRest keeps; older ones expire after each backup."""

    full: int = 2
    diff: int = 6


# A WAL segment is archived when full or after this long, so at most this much of the last
# writes is lost with the whole server (an idle segment compresses to a few kilobytes).
ARCHIVE_TIMEOUT_S: Final = 60


def pgbackrest_conf(repo: Repository, cluster: Cluster, retention: Retention) -> str:
    return "\n".join(
        [
            "# Written by 'shouwang backup setup'; run it again rather than editing this file.",
            "[global]",
            f"repo1-path={repo.pgbackrest}",
            f"repo1-retention-full={retention.full}",
            f"repo1-retention-diff={retention.diff}",
            f"lock-path={repo.run}",
            f"log-path={repo.run}",
            "log-level-file=off",
            "log-level-console=warn",
            "compress-type=zst",
            "start-fast=y",
            "",
            f"[{STANZA}]",
            f"pg1-path={cluster.data_dir}",
            f"pg1-port={cluster.port}",
            f"pg1-socket-path={cluster.socket_dir}",
            f"pg1-user={cluster.user}",
            "",
        ]
    )


def pgbackrest(repo: Repository, *args: str) -> list[str]:
    """A pgBackRest command line on this repository's stanza."""
    return ["pgbackrest", f"--config={repo.config}", f"--stanza={STANZA}", *args]


def archive_settings(repo: Repository, timeout_s: int = ARCHIVE_TIMEOUT_S) -> dict[str, str]:
    """The server settings (ALTER SYSTEM) that archive every WAL segment into the repository."""
    push = " ".join(shlex.quote(a) for a in pgbackrest(repo, "archive-push"))
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"{push} %p",
        "archive_timeout": f"{timeout_s}s",
    }


def backup_args(kind: BackupKind) -> list[str]:
    """pgBackRest's arguments for a backup (an ``incr`` or ``diff`` with no full backup before
    it is made full by pgBackRest itself)."""
    if kind not in KINDS:
        raise ConfigError("--type", f"{kind!r} is not a backup type; give full, diff or incr")
    return [f"--type={kind}", "backup"]


def restore_args(target: datetime | None, label: str | None, delta: bool) -> list[str]:
    """pgBackRest's arguments for a restore: to ``target`` (point in time; pgBackRest picks the
    newest backup before it), else to the end of the archived WAL, from backup set ``label``
    (default: the newest). The restored server promotes itself when recovery ends."""
    args = []
    if target is not None:
        args += ["--type=time", f"--target={pg_time(target)}", "--target-action=promote"]
    if label is not None:
        args.append(f"--set={label}")
    if delta:
        args.append("--delta")
    return [*args, "restore"]


def pg_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


_TZ = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$")


def parse_target(text: str) -> datetime:
    """A recovery target given on the command line: ISO 8601 with its time zone."""
    try:
        t = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise ConfigError(
            f"--target {text}",
            "not a time; give ISO 8601 with a zone, e.g. 2026-12-01T08:30:00+08:00",
        ) from None
    if t.tzinfo is None or not _TZ.search(text.strip()):
        raise ConfigError(
            f"--target {text}",
            "give the time zone (…+08:00 or …Z): a recovery target without one is ambiguous",
        )
    return t


# What of the state directory a restore does not need: the cluster itself (pgBackRest's part),
# the broker's sessions and queued messages (transient; devices and ingest connect anew), its
# pid and log, setup's build products and logs, and the repository if it lies inside.
STATE_EXCLUDED: Final = frozenset(
    {
        "pg",
        "apt-src",
        "pip.log",
        "backups",
        "mosquitto/data",
        "mosquitto/mosquitto.pid",
        "mosquitto/mosquitto.log",
    }
)


def state_excluded(relative: PurePosixPath) -> bool:
    """Whether a path of the state directory (relative to it) stays out of the files archive."""
    parts = relative.parts
    return any("/".join(parts[: i + 1]) in STATE_EXCLUDED for i in range(len(parts))) or (
        relative.name.endswith((".tmp", ".new"))
    )


@dataclass(frozen=True, slots=True)
class Source:
    """A file or directory to archive under ``arcname`` (``role``: why a restore needs it)."""

    path: Path
    arcname: str
    role: str


def file_sources(
    *,
    state_dir: Path,
    broker_files: tuple[Path, Path],
    ca_file: Path | None,
    settings_files: list[Path],
    provisioning: list[Path],
    extra: list[Path],
) -> list[Source]:
    """Everything a restore needs besides the database: the state directory (settings env file
    with the secrets, TLS CA and certificates, broker files, demo device secrets), and each
    file the settings name that lies outside it, Grafana provisioning, and extra files (a
    compose ``.env``)."""
    out = [Source(state_dir, "state", "state directory (settings, secrets, TLS, broker files)")]
    state = state_dir.resolve()

    def outside(p: Path) -> bool:
        return not p.resolve().is_relative_to(state)

    for p in broker_files:
        if outside(p):
            out.append(Source(p, f"broker/{p.name}", "broker password file and ACL"))
    if ca_file is not None and outside(ca_file):
        out.append(Source(ca_file, f"tls/{ca_file.name}", "the broker's CA certificate"))
    for i, p in enumerate(settings_files):
        if outside(p):
            out.append(Source(p, f"settings-files/{i}/{p.name}", "a file the settings name"))
    for i, p in enumerate(provisioning):
        out.append(Source(p, f"provisioning/{i}/{p.name}", "Grafana provisioning"))
    for i, p in enumerate(extra):
        out.append(Source(p, f"extra/{i}/{p.name}", "extra file"))
    return out


def choose_files(labels_times: list[tuple[str, datetime]], target: datetime | None) -> str | None:
    """The files archive to restore with the database: the newest made at or before ``target``
    (none: the newest of all); None when there is none."""
    fit = [(t, lab) for lab, t in labels_times if target is None or t <= target]
    return max(fit)[1] if fit else None


# The schedule: a full backup every Sunday, an incremental one every other day, at 01:30 local
# time; WAL is archived continuously in between (ARCHIVE_TIMEOUT_S).
def cron_file(shouwang_bin: Path, repo: Repository, user: str = "root") -> str:
    base = f"{shlex.quote(str(shouwang_bin))} backup create --repo {shlex.quote(str(repo.root))}"
    return "\n".join(
        [
            "# shouwang backups (shouwang backup schedule): pgBackRest full backup on Sundays,",
            "# incremental the other days, with the files a restore needs; WAL is archived",
            "# continuously in between. Output goes to syslog (logger -t shouwang-backup).",
            "SHELL=/bin/sh",
            f"30 1 * * 0 {user} {base} --type full 2>&1 | logger -t shouwang-backup",
            f"30 1 * * 1-6 {user} {base} --type incr 2>&1 | logger -t shouwang-backup",
            "",
        ]
    )


def systemd_units(shouwang_bin: Path, repo: Repository) -> dict[str, str]:
    """A oneshot service and its daily timer (incremental; pgBackRest makes it full when no full
    backup is kept; run ``--type full`` weekly from the cron form or by hand)."""
    cmd = f"{shouwang_bin} backup create --repo {repo.root} --type incr"
    return {
        "shouwang-backup.service": "\n".join(
            [
                "[Unit]",
                "Description=shouwang backup (pgBackRest and the files a restore needs)",
                "[Service]",
                "Type=oneshot",
                f"ExecStart={cmd}",
                "",
            ]
        ),
        "shouwang-backup.timer": "\n".join(
            [
                "[Unit]",
                "Description=shouwang backup, daily at 01:30",
                "[Timer]",
                "OnCalendar=*-*-* 01:30:00",
                "Persistent=true",
                "[Install]",
                "WantedBy=timers.target",
                "",
            ]
        ),
    }
