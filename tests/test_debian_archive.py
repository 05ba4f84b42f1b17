"""scripts/debian_archive.sh: the Debian archive setup.sh fetches TimescaleDB's source package
from is the one the machine's own apt sources name (one-line and deb822), unless
SHOUWANG_DEBIAN_ARCHIVE says otherwise; with none, it says what to set."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "debian_archive.sh"


def archive(etc: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "SHOUWANG_DEBIAN_ARCHIVE"}
    return subprocess.run(
        ["bash", str(SCRIPT), str(etc)],
        check=False,
        env=clean | env,
        capture_output=True,
        text=True,
    )


def apt_etc(tmp_path: Path, files: dict[str, str]) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


def test_one_line_sources_skip_other_archives_security_and_comments(tmp_path: Path) -> None:
    etc = apt_etc(
        tmp_path,
        {
            "sources.list": "# deb http://commented.example/debian bookworm main\n"
            "deb https://mirror.example.cn/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://vendor.example/apt "
            "vendor-bookworm main\n"
            "deb-src  https://mirror.example.cn/debian/  bookworm  contrib main  # the mirror\n",
            "sources.list.d/other.list": "deb http://later.example/debian bookworm main\n",
        },
    )
    out = archive(etc)
    assert (out.returncode, out.stdout) == (0, "https://mirror.example.cn/debian\n"), out.stderr


def test_deb822_sources_skip_disabled_entries_and_read_continuations(tmp_path: Path) -> None:
    etc = apt_etc(
        tmp_path,
        {
            "sources.list.d/debian.sources": "Types: deb\n"
            "URIs: http://disabled.example/debian\n"
            "Suites: trixie\n"
            "Components: main\n"
            "Enabled: no\n"
            "\n"
            "Types: deb\n"
            "URIs: http://only-contrib.example/debian\n"
            "Suites: trixie\n"
            "Components: contrib\n"
            "\n"
            "Types: deb deb-src\n"
            "# a comment inside the paragraph\n"
            "URIs: http://mirrors.example.edu.cn/debian/\n"
            "Suites: trixie-updates\n"
            "  trixie\n"
            "Components: main non-free-firmware\n",
        },
    )
    out = archive(etc)
    assert (out.returncode, out.stdout) == (0, "http://mirrors.example.edu.cn/debian\n"), out.stderr


def test_the_setting_overrides_the_sources(tmp_path: Path) -> None:
    etc = apt_etc(tmp_path, {"sources.list": "deb http://deb.example/debian bookworm main\n"})
    out = archive(etc, SHOUWANG_DEBIAN_ARCHIVE="https://override.example/debian/")
    assert (out.returncode, out.stdout) == (0, "https://override.example/debian\n")


def test_without_a_debian_archive_it_says_what_to_set(tmp_path: Path) -> None:
    etc = apt_etc(
        tmp_path, {"sources.list": "deb http://archive.example/ubuntu noble main universe\n"}
    )
    out = archive(etc)
    assert out.returncode == 1 and out.stdout == ""
    assert "no Debian archive among the apt sources" in out.stderr
    assert "set SHOUWANG_DEBIAN_ARCHIVE" in out.stderr


def test_this_machine_has_a_debian_archive() -> None:
    out = archive(Path("/etc/apt"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(("http://", "https://"))


SOURCE = ROOT / "scripts" / "debian_source.sh"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_source_package_that_cannot_be_fetched_says_what_to_do(tmp_path: Path) -> None:
    archive_url = f"http://127.0.0.1:{closed_port()}/debian"
    out = subprocess.run(
        ["bash", str(SOURCE), "timescaledb", "trixie", str(tmp_path / "src")],
        check=False,
        env=os.environ | {"SHOUWANG_DEBIAN_ARCHIVE": archive_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    said = out.stderr
    assert (
        f"Could not fetch Debian's source package timescaledb (trixie) from {archive_url}" in said
    )
    assert "SHOUWANG_DEBIAN_ARCHIVE=https://<your mirror>/debian bash scripts/setup.sh" in said
    assert f"{tmp_path / 'src' / 'build'}/" in said  # where to put a package fetched elsewhere
    assert (tmp_path / "src" / "fetch.log").exists()
    assert not list((tmp_path / "src" / "build").glob("*.dsc"))


def test_a_source_package_put_in_place_by_hand_is_used_as_it_is(tmp_path: Path) -> None:
    build = tmp_path / "src" / "build"
    build.mkdir(parents=True)
    (build / "timescaledb_2.19.3+dfsg-1.dsc").write_text("Source: timescaledb\n")
    out = subprocess.run(
        ["bash", str(SOURCE), "timescaledb", "trixie", str(tmp_path / "src")],
        check=False,
        env=os.environ | {"SHOUWANG_DEBIAN_ARCHIVE": "http://127.0.0.1:1/debian"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert not (tmp_path / "src" / "fetch.log").exists()
