"""Backups: doing what ``backups.plan`` says. pgBackRest runs as the cluster's owner (``runuser``
when this process is root), with the database password from the settings' URL in its
environment (never on a command line or in its configuration); the files archive is written
here, mode 0600.
"""

from __future__ import annotations

import hashlib
import io
import os
import pwd
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from psycopg.conninfo import conninfo_to_dict

from backups.catalogue import BackupSet, Catalogue, parse_info
from backups.manifest import NAME, Entry, Manifest, differences
from backups.plan import (
    BackupKind,
    Cluster,
    Repository,
    Retention,
    Source,
    archive_settings,
    backup_args,
    choose_files,
    pgbackrest,
    pgbackrest_conf,
    restore_args,
    state_excluded,
)
from core.db import connect
from core.errors import ConfigError

Say = Callable[[str], None]


def _owner_prefix(os_user: str) -> list[str]:
    me = pwd.getpwuid(os.geteuid()).pw_name
    if me == os_user:
        return []
    if os.geteuid() == 0:
        return ["runuser", "-u", os_user, "--"]
    raise ConfigError(
        f"user {me}",
        f"pgBackRest and PostgreSQL run as the cluster's owner {os_user!r}; run this command as "
        f"{os_user} or as root",
    )


def _run(cmd: list[str], what: str, *, env: dict[str, str] | None = None) -> str:
    if shutil.which(cmd[0]) is None:
        raise ConfigError(cmd[0], "not installed; run scripts/setup.sh (Debian package pgbackrest)")
    # The cluster's owner may not be able to enter this process's working directory.
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip())[-1500:]
        raise ConfigError(what, f"failed (exit {done.returncode}): {tail}")
    return done.stdout


def _password_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    password = conninfo_to_dict(database_url).get("password")
    if password:
        env["PGPASSWORD"] = str(password)
    return env


def load_cluster(repo: Repository) -> Cluster:
    try:
        text = repo.cluster_file.read_text()
    except OSError as e:
        raise ConfigError(
            str(repo.root),
            f"not a shouwang backup repository ({e.strerror}: {repo.cluster_file}); give the "
            "repository with --repo (or SHOUWANG_BACKUP_REPO), or run 'shouwang backup setup'",
        ) from None
    return Cluster.from_json(text, str(repo.cluster_file))


def pgbackrest_run(
    repo: Repository, cluster: Cluster, *args: str, database_url: str = "", what: str = ""
) -> str:
    cmd = _owner_prefix(cluster.os_user) + pgbackrest(repo, *args)
    return _run(cmd, what or f"pgbackrest {args[-1]}", env=_password_env(database_url))


# --- setup ---------------------------------------------------------------------------------


def describe(database_url: str) -> tuple[Cluster, dict[str, str]]:
    """The cluster behind ``database_url`` (which must be on this host) and its archive
    settings now."""
    with connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('data_directory'), current_setting('port'),"
            " current_setting('unix_socket_directories'), current_user,"
            " current_setting('server_version_num')::int / 10000,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
        assert row is not None
        names = ("wal_level", "archive_mode", "archive_command", "archive_timeout")
        now = {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]
    data_dir, port, sockets, user, major, superuser = row
    if not superuser:
        raise ConfigError(
            "SHOUWANG_DATABASE_URL",
            f"{user!r} is not a superuser; backups need the database owner's URL (pgBackRest "
            "starts and stops backups and reads every database)",
        )
    data = Path(data_dir)
    try:
        os_user = pwd.getpwuid(data.stat().st_uid).pw_name
    except OSError:
        raise ConfigError(
            str(data),
            "the cluster's data directory is not on this host; run 'shouwang backup setup' on "
            "the database's host (pgBackRest copies the cluster's files)",
        ) from None
    socket_dir = next((s.strip() for s in str(sockets).split(",") if s.strip()), "")
    if not socket_dir:
        raise ConfigError(
            "unix_socket_directories", "empty; pgBackRest connects through a Unix socket"
        )
    pg_bin = Path(f"/usr/lib/postgresql/{major}/bin")
    if not (pg_bin / "pg_ctl").exists():
        raise ConfigError(str(pg_bin), f"no pg_ctl; install postgresql-{major}")
    return Cluster(data, int(port), Path(socket_dir), str(user), os_user, pg_bin, int(major)), now


def _own(path: Path, user: str, mode: int) -> None:
    path.chmod(mode)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def prepare_repository(repo: Repository, cluster: Cluster, retention: Retention) -> None:
    """The repository's directories and files, each owned by who uses it: pgBackRest's parts
    by the cluster's owner, the files archives by this user only."""
    repo.root.mkdir(parents=True, exist_ok=True)
    repo.root.chmod(0o711)  # the cluster's owner passes through to its own parts only
    for d in (repo.pgbackrest, repo.run):
        d.mkdir(exist_ok=True)
        _own(d, cluster.os_user, 0o750)
    repo.files.mkdir(exist_ok=True)
    repo.files.chmod(0o700)
    repo.cluster_file.write_text(cluster.to_json())
    repo.cluster_file.chmod(0o644)
    repo.config.write_text(pgbackrest_conf(repo, cluster, retention))
    _own(repo.config, cluster.os_user, 0o600)
    probe = [*_owner_prefix(cluster.os_user), "test", "-w", str(repo.pgbackrest)]
    if subprocess.run(probe, cwd="/", check=False).returncode != 0:
        raise ConfigError(
            str(repo.root),
            f"the cluster's owner {cluster.os_user!r} cannot write here (a directory above it "
            "is closed to it); put the repository where that user can reach, e.g. "
            "/var/lib/shouwang-backups",
        )


def setup(
    database_url: str,
    repo: Repository,
    retention: Retention,
    *,
    archive_timeout_s: int,
    restart: bool,
    say: Say,
) -> bool:
    """Make the repository, turn on WAL archiving into it and create pgBackRest's stanza;
    return whether it is ready (False: PostgreSQL must restart first, which ``restart`` does)."""
    cluster, now = describe(database_url)
    prepare_repository(repo, cluster, retention)
    wanted = archive_settings(repo, archive_timeout_s)
    with connect(database_url, autocommit=True) as conn:
        for name, value in wanted.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value.replace(chr(39), chr(39) * 2)}'")
        conn.execute("SELECT pg_reload_conf()")
    say(f"WAL archiving set (ALTER SYSTEM): archive_timeout {wanted['archive_timeout']}")
    needs_restart = now["archive_mode"] == "off" or now["wal_level"] == "minimal"
    if needs_restart:
        if not restart:
            say(
                "archive_mode was off: restart PostgreSQL (scripts/stack.sh down; scripts/stack.sh "
                "up, or --restart here), then run 'shouwang backup setup' again"
            )
            return False
        _pg_ctl(cluster, "restart", "--mode=fast")
        say(f"PostgreSQL restarted ({cluster.data_dir}) with archive_mode on")
    pgbackrest_run(repo, cluster, "stanza-create", database_url=database_url)
    pgbackrest_run(repo, cluster, "check", database_url=database_url)
    say(f"pgBackRest stanza ready; WAL segments archive into {repo.pgbackrest}")
    return True


def _pg_ctl(cluster: Cluster, action: str, *more: str) -> None:
    log = cluster.data_dir / "server.log"
    cmd = [str(cluster.pg_bin / "pg_ctl"), "-D", str(cluster.data_dir), "-l", str(log), "-w"]
    _run([*_owner_prefix(cluster.os_user), *cmd, "-t", "120", *more, action], f"pg_ctl {action}")


# --- backup --------------------------------------------------------------------------------


def catalogue(repo: Repository, cluster: Cluster) -> Catalogue:
    return parse_info(pgbackrest_run(repo, cluster, "--output=json", "info"))


@dataclass(frozen=True, slots=True)
class Made:
    backup: BackupSet
    files: Manifest
    expired_files: tuple[str, ...]


def create(database_url: str, repo: Repository, kind: BackupKind, sources: list[Source]) -> Made:
    """A pgBackRest backup, then the files archive of its label; files archives whose backup
    set pgBackRest expired are removed."""
    cluster = load_cluster(repo)
    pgbackrest_run(repo, cluster, *backup_args(kind), database_url=database_url)
    cat = catalogue(repo, cluster)
    newest = cat.newest
    assert newest is not None, "pgBackRest reported a backup but lists none"
    manifest = write_files(repo, newest.label, sources)
    kept = {s.label for s in cat.sets}
    expired = []
    for m in sorted(repo.files.glob("*.json")):
        if m.stem not in kept:
            m.unlink()
            repo.files_tar(m.stem).unlink(missing_ok=True)
            expired.append(m.stem)
    return Made(newest, manifest, tuple(expired))


def _collect(sources: list[Source]) -> list[tuple[Path, str, str]]:
    """(file, arcname, role) of every regular file of the sources (symbolic links are not
    followed; the state directory without what ``state_excluded`` names)."""
    out = []
    for s in sources:
        if not s.path.exists():
            continue
        if s.path.is_file():
            out.append((s.path, s.arcname, s.role))
            continue
        for dirpath, dirnames, filenames in os.walk(s.path):
            rel_dir = PurePosixPath(Path(dirpath).relative_to(s.path).as_posix())
            if s.arcname == "state":
                dirnames[:] = [d for d in dirnames if not state_excluded(rel_dir / d)]
            for name in sorted(filenames):
                p = Path(dirpath) / name
                rel = rel_dir / name
                if p.is_symlink() or not p.is_file():
                    continue
                if s.arcname == "state" and state_excluded(rel):
                    continue
                out.append((p, f"{s.arcname}/{rel}".replace("/./", "/"), s.role))
    return out


def write_files(repo: Repository, label: str, sources: list[Source]) -> Manifest:
    """The files archive ``files/<label>.tar``: manifest.json, then each file, mode 0600."""
    blobs = []
    for path, arcname, role in _collect(sources):
        data = path.read_bytes()
        mode = path.stat().st_mode & 0o7777
        entry = Entry(
            arcname, str(path.resolve()), len(data), hashlib.sha256(data).hexdigest(), mode, role
        )
        blobs.append((entry, data))
    manifest = Manifest(label, datetime.now(UTC), tuple(e for e, _ in blobs))
    repo.files.mkdir(parents=True, exist_ok=True)
    tmp = repo.files / f".{label}.tar.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
        _add(tar, NAME, manifest.to_json().encode(), 0o600)
        for entry, data in blobs:
            _add(tar, entry.arcname, data, entry.mode)
    os.replace(tmp, repo.files_tar(label))
    fd = os.open(repo.files_manifest(label), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as text:
        text.write(manifest.to_json())
    return manifest


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def read_files(tar_path: Path) -> tuple[Manifest, dict[str, bytes]]:
    """A files archive's manifest and contents, refused when they disagree."""
    try:
        with tarfile.open(tar_path) as tar:
            contents = {}
            for m in tar.getmembers():
                f = tar.extractfile(m)
                if f is not None:
                    contents[m.name] = f.read()
    except (OSError, tarfile.TarError) as e:
        raise ConfigError(str(tar_path), f"cannot read the files archive ({e})") from None
    if NAME not in contents:
        raise ConfigError(str(tar_path), f"no {NAME}: not a shouwang files archive")
    manifest = Manifest.from_json(contents.pop(NAME).decode(), f"{tar_path}:{NAME}")
    found = {k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in contents.items()}
    if wrong := differences(manifest, found):
        raise ConfigError(str(tar_path), "damaged: " + "; ".join(wrong[:5]))
    return manifest, contents


def check(repo: Repository, database_url: str, say: Say) -> list[str]:
    """pgBackRest's own check (the archive works: a WAL switch arrives in the repository), and
    every files archive whole and readable by this user only; the problems found."""
    cluster = load_cluster(repo)
    problems = []
    try:
        pgbackrest_run(repo, cluster, "check", database_url=database_url)
        say("pgBackRest check: WAL archiving works")
    except ConfigError as e:
        problems.append(str(e))
    for tar in sorted(repo.files.glob("*.tar")):
        mode = tar.stat().st_mode & 0o777
        if mode & 0o077:
            problems.append(f"{tar}: mode {oct(mode)}, it holds secrets: chmod 600 {tar}")
        try:
            manifest, _ = read_files(tar)
            say(f"{tar.name}: {len(manifest.entries)} files, whole")
        except ConfigError as e:
            problems.append(str(e))
    return problems


# --- restore -------------------------------------------------------------------------------


def running_pid(cluster: Cluster) -> int | None:
    """The postmaster's pid when the cluster runs (its postmaster.pid names a live process)."""
    try:
        pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _port_taken(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def refuse_running(cluster: Cluster) -> None:
    """A restore never overwrites a running cluster."""
    if (pid := running_pid(cluster)) is not None:
        raise ConfigError(
            str(cluster.data_dir),
            f"PostgreSQL is running on this data directory (pid {pid}); a restore never "
            "overwrites a running cluster. Stop it first (scripts/stack.sh down, or pg_ctl -D "
            f"{cluster.data_dir} stop) and run the restore again",
        )
    if _port_taken(cluster.port):
        raise ConfigError(
            f"port {cluster.port}",
            "something listens on the cluster's port; stop the server running there before "
            "restoring (the restored cluster starts on this port)",
        )


def restore_database(
    repo: Repository,
    *,
    target: datetime | None,
    label: str | None,
    delta: bool,
    say: Say,
) -> Cluster:
    cluster = load_cluster(repo)
    refuse_running(cluster)
    data = cluster.data_dir
    if data.exists() and any(data.iterdir()) and not delta:
        raise ConfigError(
            str(data),
            "the data directory is not empty; move it aside (mv it to a new name) to restore "
            "into an empty one, or give --delta to restore over it (its changed files are "
            "replaced, everything it has that the backup has not is lost)",
        )
    data.mkdir(parents=True, exist_ok=True)
    _own(data, cluster.os_user, 0o700)
    pgbackrest_run(repo, cluster, *restore_args(target, label, delta))
    # The local stack keeps its Unix socket in the data directory: the socket's lock file came
    # with the backup and would keep the restored server from starting.
    for stale in data.glob(".s.PGSQL.*"):
        stale.unlink()
    say(
        f"database restored into {data}"
        + (f", to {target.isoformat()}" if target else ", to the end of the archived WAL")
    )
    return cluster


def start(cluster: Cluster, database_url: str, timeout_s: float = 300.0) -> None:
    """Start the restored cluster and wait until recovery has ended (it accepts writes)."""
    _pg_ctl(cluster, "start")
    deadline = time.monotonic() + timeout_s
    while True:
        with connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is not None and not row[0]:
            return
        if time.monotonic() > deadline:
            raise ConfigError(
                str(cluster.data_dir / "server.log"),
                f"still recovering after {timeout_s:.0f} s; see the server's log",
            )
        time.sleep(0.2)


def files_label(repo: Repository, target: datetime | None, label: str | None) -> str:
    if label is not None:
        if not repo.files_tar(label).exists():
            raise ConfigError(f"--set {label}", f"no files archive {repo.files_tar(label)}")
        return label
    found = []
    for m in repo.files.glob("*.json"):
        found.append((m.stem, Manifest.from_json(m.read_text(), str(m)).created_at))
    chosen = choose_files(found, target)
    if chosen is None:
        raise ConfigError(
            str(repo.files),
            "no files archive"
            + (f" made before {target.isoformat()}" if target else "")
            + "; 'shouwang backup create' makes one with each backup",
        )
    return chosen


def restore_files(repo: Repository, label: str, *, into: Path | None, say: Say) -> list[Path]:
    """Write each file of the archive back where it came from (or under ``into``, by its name in
    the archive), with its mode; a different file already there is kept as
    ``<name>.pre-restore``. The paths written."""
    manifest, contents = read_files(repo.files_tar(label))
    written = []
    for e in manifest.entries:
        dest = into / e.arcname if into is not None else Path(e.source)
        data = contents[e.arcname]
        if dest.exists():
            if dest.read_bytes() == data:
                continue
            os.replace(dest, dest.with_name(dest.name + ".pre-restore"))
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        dest.chmod(e.mode)
        written.append(dest)
    say(f"files of {label} restored: {len(written)} written, {len(manifest.entries)} in the set")
    return written
