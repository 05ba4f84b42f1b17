"""``shouwang gateway``: check a site config (the plan, or every problem with its line); the
broker's subcommands stay reachable under the earlier spelling."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import shouwang

SITE = """\
gateway: C01-GW
broker: {host: 127.0.0.1, password_file: gw.secret}
buffer: {path: buffer.db}
networks: [10.1.0.0/16]
devices:
  - {uid: C01-PR, profile: pump-room-controller, tcp: {host: 10.1.0.5}, unit: 2}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shouwang(*args), capture_output=True, text=True, timeout=60, check=False)


def said(out: subprocess.CompletedProcess[str]) -> str:
    """What the command printed (the console writes to standard error), on one line."""
    return " ".join((out.stdout + out.stderr).split())


def test_check_shows_the_plan_or_every_problem(tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text(SITE)
    out = run("gateway", "check", str(good))
    assert out.returncode == 0, out.stderr
    assert (
        "C01-PR (pump-room-controller, unit 2): discrete_inputs 0+1, holding 0+1, input 0+16"
        in said(out)
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(SITE.replace("10.1.0.5", "192.168.1.5").replace("unit: 2", "unit: 300"))
    out = run("gateway", "check", str(bad))
    assert out.returncode == 2
    text = said(out)
    assert f"{bad}:6: devices[0].unit: Input should be less than or equal to 247" in text


def test_the_broker_commands_stay_reachable_under_gateway() -> None:
    out = run("gateway", "issue", "--help")
    assert out.returncode == 0, out.stderr
    assert "Issue (or rotate) the credential" in said(out)
