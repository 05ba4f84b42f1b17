"""Backups' files archive (real files, no services): what goes in, its manifest, mode 0600, a
damaged archive refused, the restore putting files back; and a restore refused over a running
cluster."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from backups.manifest import NAME, Manifest
from backups.plan import Cluster, Repository, file_sources
from backups.runner import read_files, refuse_running, restore_files, write_files
from core.errors import ConfigError


def state_dir(root: Path) -> Path:
    state = root / "state"
    for rel, text, mode in [
        ("shouwang.env", "SHOUWANG_NOTIFY_ACK_SECRET=s3cret\n", 0o600),
        ("tls/ca.crt", "CERT", 0o644),
        ("tls/ca.key", "KEY", 0o600),
        ("mosquitto/passwd", "dev:$7$...", 0o600),
        ("mosquitto/acl", "user dev", 0o600),
        ("mosquitto/mosquitto.pid", "123", 0o644),
        ("mosquitto/data/mosquitto.db", "sessions", 0o644),
        ("pg/PG_VERSION", "15", 0o600),
        ("pip.log", "pip", 0o644),
    ]:
        p = state / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)
    return state


def test_the_archive_holds_what_a_restore_needs_and_puts_it_back(tmp_path: Path) -> None:
    state = state_dir(tmp_path)
    prov = tmp_path / "provisioning"
    (prov / "datasources").mkdir(parents=True)
    (prov / "datasources" / "shouwang.yaml").write_text("apiVersion: 1\n")
    repo = Repository(tmp_path / "repo")
    sources = file_sources(
        state_dir=state,
        broker_files=(state / "mosquitto" / "passwd", state / "mosquitto" / "acl"),
        ca_file=state / "tls" / "ca.crt",
        settings_files=[],
        provisioning=[prov],
        extra=[],
    )
    manifest = write_files(repo, "20261201-080416F", sources)
    names = {e.arcname for e in manifest.entries}
    assert names == {
        "state/shouwang.env",
        "state/tls/ca.crt",
        "state/tls/ca.key",
        "state/mosquitto/passwd",
        "state/mosquitto/acl",
        "provisioning/0/provisioning/datasources/shouwang.yaml",
    }
    tar = repo.files_tar("20261201-080416F")
    assert tar.stat().st_mode & 0o777 == 0o600
    assert repo.files_manifest("20261201-080416F").stat().st_mode & 0o777 == 0o600
    with tarfile.open(tar) as t:
        assert t.getnames()[0] == NAME
    assert Manifest.from_json(repo.files_manifest("20261201-080416F").read_text(), "m") == manifest

    # Lost, and one file changed by hand since: everything comes back, the changed one kept aside.
    (state / "tls" / "ca.key").unlink()
    (state / "shouwang.env").write_text("SHOUWANG_NOTIFY_ACK_SECRET=other\n")
    restore_files(repo, "20261201-080416F", into=None, say=lambda _: None)
    assert (state / "tls" / "ca.key").read_text() == "KEY"
    assert (state / "tls" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (state / "shouwang.env").read_text() == "SHOUWANG_NOTIFY_ACK_SECRET=s3cret\n"
    assert (state / "shouwang.env.pre-restore").read_text() == "SHOUWANG_NOTIFY_ACK_SECRET=other\n"
    into = tmp_path / "inspect"
    restore_files(repo, "20261201-080416F", into=into, say=lambda _: None)
    assert (into / "state" / "mosquitto" / "passwd").read_text() == "dev:$7$..."


def test_a_damaged_archive_is_refused(tmp_path: Path) -> None:
    state = state_dir(tmp_path)
    repo = Repository(tmp_path / "repo")
    sources = file_sources(
        state_dir=state,
        broker_files=(state / "x", state / "y"),
        ca_file=None,
        settings_files=[],
        provisioning=[],
        extra=[],
    )
    write_files(repo, "L", sources)
    tar = repo.files_tar("L")
    data = bytearray(tar.read_bytes())
    at = data.index(b"s3cret")
    data[at : at + 6] = b"XXXXXX"
    tar.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"damaged: state/shouwang.env: .* the manifest says"):
        read_files(tar)


def test_a_restore_never_overwrites_a_running_cluster(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    data.mkdir()
    cluster = Cluster(data, 1, data, "shouwang", "postgres", Path("/usr/bin"), 15)
    refuse_running(cluster)  # nothing there: no objection (port 1 takes no connection)
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n{data}\n")
    with pytest.raises(ConfigError, match="never overwrites a running cluster"):
        refuse_running(cluster)
