"""The command line: ``shouwang backup``: pgBackRest backups of the database with point-in-time
recovery, and the files a restore needs (settings, secrets, broker files, TLS, Grafana
provisioning) beside them in one repository (``backups``; docs/operations.md, "Backups and
restore")."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from backups.plan import Repository, Source
from core.settings import PROJECT_ROOT, Settings, load_settings
from shouwang.console import console

app = typer.Typer(
    no_args_is_help=True,
    help="Backups (pgBackRest, point-in-time recovery) and the files a restore needs.",
)

Repo = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        envvar="SHOUWANG_BACKUP_REPO",
        help="the backup repository (default <state dir>/backups; keep it on another disk)",
    ),
]


def _repo(repo: Path | None, s: Settings) -> Repository:
    return Repository((repo or s.state_dir / "backups").resolve())


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


@app.command("setup")
def backup_setup(
    repo: Repo = None,
    retention_full: Annotated[int, typer.Option(min=1, help="full backups kept")] = 2,
    retention_diff: Annotated[int, typer.Option(min=1, help="differential backups kept")] = 6,
    archive_timeout: Annotated[
        int, typer.Option(min=10, help="seconds after which a WAL segment is archived anyway")
    ] = 60,
    restart: Annotated[
        bool, typer.Option(help="restart PostgreSQL when archive_mode must be switched on")
    ] = False,
) -> None:
    """Make the repository, turn on WAL archiving into it (ALTER SYSTEM) and create pgBackRest's
    stanza. Run once on the database's host, as root or the cluster's owner."""
    from backups.plan import Retention
    from backups.runner import setup

    s = load_settings()
    r = _repo(repo, s)
    ready = setup(
        s.database_url,
        r,
        Retention(retention_full, retention_diff),
        archive_timeout_s=archive_timeout,
        restart=restart,
        say=_say,
    )
    if not ready:
        raise typer.Exit(1)
    _say(f"ready: 'shouwang backup create --repo {r.root}' makes the first backup")


@app.command("create")
def backup_create(
    repo: Repo = None,
    kind: Annotated[
        str, typer.Option("--type", help="full, diff or incr (made full when none is kept)")
    ] = "incr",
    provisioning: Annotated[
        list[Path] | None,
        typer.Option(help="Grafana provisioning directory (default dashboards/provisioning)"),
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option(help="another file or directory a restore needs (a compose .env); repeatable"),
    ] = None,
) -> None:
    """Back up the database (pgBackRest) and the files a restore needs (a tar with a manifest,
    mode 0600, named after the backup's label)."""
    from backups.plan import KINDS
    from backups.runner import create
    from core.errors import ConfigError

    if kind not in KINDS:
        raise ConfigError("--type", f"{kind!r} is not a backup type; give full, diff or incr")
    s = load_settings()
    r = _repo(repo, s)
    made = create(s.database_url, r, kind, _sources(s, provisioning, include))  # type: ignore[arg-type]
    b, m = made.backup, made.files
    _say(
        f"backup {b.label} ({b.kind}): {b.size / 1e6:.1f} MB of cluster, {b.repo_size / 1e6:.1f} MB"
        f" stored, {(b.stopped - b.started).total_seconds():.0f} s; files: {len(m.entries)}"
        f" ({m.total_bytes / 1e3:.1f} kB) in {r.files_tar(b.label)}"
    )
    for label in made.expired_files:
        _say(f"expired with its backup set: files of {label}")


def _sources(
    s: Settings, provisioning: list[Path] | None, include: list[Path] | None
) -> list[Source]:
    from backups.plan import file_sources

    default_prov = PROJECT_ROOT / "dashboards" / "provisioning"
    prov = provisioning if provisioning else ([default_prov] if default_prov.is_dir() else [])
    passwd, acl, _pid = s.broker_files()
    named = [
        p
        for p in (s.responsibility_list, s.responsibility_overrides, s.work_calendar)
        if p is not None
    ]
    return file_sources(
        state_dir=s.state_dir,
        broker_files=(passwd, acl),
        ca_file=s.mqtt_ca_file,
        settings_files=named,
        provisioning=[p.resolve() for p in prov],
        extra=[p.resolve() for p in include or []],
    )


@app.command("list")
def backup_list(repo: Repo = None) -> None:
    """The backup sets, their files archives and the window a point-in-time restore reaches."""
    from backups.runner import catalogue, load_cluster

    s = load_settings()
    r = _repo(repo, s)
    cat = catalogue(r, load_cluster(r))
    _say(f"repository {r.root}: pgBackRest status {cat.status}")
    for b in cat.sets:
        files = "files ok" if r.files_tar(b.label).exists() else "NO FILES ARCHIVE"
        _say(
            f"  {b.label}  {b.kind:4}  {b.started:%Y-%m-%d %H:%M:%S}Z .. {b.stopped:%H:%M:%S}Z"
            f"  {b.size / 1e6:8.1f} MB  stored {b.repo_size / 1e6:7.1f} MB  {files}"
        )
    if cat.earliest_recovery is not None:
        _say(
            f"point-in-time restore reaches from {cat.earliest_recovery.isoformat()} to the "
            f"newest archived WAL ({cat.wal_max})"
        )
    else:
        _say("no backup yet: 'shouwang backup create'")


@app.command("check")
def backup_check(repo: Repo = None) -> None:
    """pgBackRest's check (WAL archiving works) and every files archive whole and private."""
    from backups.runner import check

    s = load_settings()
    r = _repo(repo, s)
    problems = check(r, s.database_url, _say)
    for p in problems:
        console.print(f"[bold red]problem:[/] {p}", highlight=False)
    if problems:
        raise typer.Exit(1)
    _say("backups: ok")


@app.command("restore")
def backup_restore(
    repo: Repo = None,
    target: Annotated[
        str | None,
        typer.Option(help="recover to this moment (ISO 8601 with zone); default: all WAL kept"),
    ] = None,
    set_label: Annotated[
        str | None, typer.Option("--set", help="restore this backup set (default: the newest)")
    ] = None,
    delta: Annotated[
        bool, typer.Option(help="restore over the (stopped) cluster's existing data directory")
    ] = False,
    database: Annotated[bool, typer.Option(help="restore the database")] = True,
    files: Annotated[bool, typer.Option(help="restore the files")] = True,
    files_into: Annotated[
        Path | None,
        typer.Option(help="write the files under this directory instead of where they were"),
    ] = None,
    start: Annotated[
        bool, typer.Option(help="start the restored cluster and wait out its recovery")
    ] = False,
) -> None:
    """Restore the database (pgBackRest; to --target for point-in-time recovery) into the
    stopped cluster's data directory, and the files of the matching backup set where they were.
    Refuses while PostgreSQL runs there."""
    from backups.plan import parse_target
    from backups.runner import files_label, load_cluster, restore_database, restore_files
    from backups.runner import start as start_cluster

    s = load_settings()
    r = _repo(repo, s)
    when = parse_target(target) if target else None
    cluster = load_cluster(r)
    if database:
        cluster = restore_database(r, target=when, label=set_label, delta=delta, say=_say)
    if files:
        restore_files(r, files_label(r, when, set_label), into=files_into, say=_say)
    if database and start:
        start_cluster(cluster, load_settings().database_url)  # the restored settings' URL
        _say(f"PostgreSQL started on port {cluster.port}, recovery complete")
    _say(
        "next: start the stack (scripts/stack.sh up: it starts PostgreSQL, migrates and writes "
        "the broker's files from the restored registry), then the stages"
    )


@app.command("schedule")
def backup_schedule(
    repo: Repo = None,
    systemd: Annotated[
        bool, typer.Option(help="print systemd units instead of a cron file")
    ] = False,
    install: Annotated[
        bool, typer.Option(help="write the cron file to /etc/cron.d/shouwang-backup")
    ] = False,
) -> None:
    """Print (or install) the schedule: a full backup on Sundays and an incremental one the
    other days at 01:30, WAL archived continuously in between."""
    from backups.plan import cron_file, systemd_units

    s = load_settings()
    r = _repo(repo, s)
    exe = (
        Path(sys.argv[0]).resolve()
        if Path(sys.argv[0]).name == "shouwang"
        else (PROJECT_ROOT / ".venv" / "bin" / "shouwang")
    )
    if systemd:
        for name, text in systemd_units(exe, r).items():
            print(f"# /etc/systemd/system/{name}\n{text}")
        print("# then: systemctl daemon-reload && systemctl enable --now shouwang-backup.timer")
        return
    text = cron_file(exe, r)
    if install:
        target = Path("/etc/cron.d/shouwang-backup")
        target.write_text(text)
        os.chmod(target, 0o644)
        _say(f"installed {target}")
    else:
        print(text, end="")
