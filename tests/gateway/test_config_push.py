"""A site config pushed from the platform to a running gateway (``shouwang gateway push-config``,
wire contract revision 5), on the real broker, database and Modbus server: an accepted config is
applied without losing buffered data, acknowledged, and recorded with its answer; one the gateway
refuses is answered with its problems while the running config stays; one outside the site's
declared networks never leaves the platform."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from broker.site_configs import declare_networks
from core.db import Conn
from core.settings import Settings
from ingest.consumer import Consumer
from simulators.county import County
from sites.converter import Function
from tests.conftest import Broker, settings_env, shouwang
from tests.gateway.conftest import ModbusSite
from tests.gateway.site_run import (
    DEVICES,
    drain_and_stop,
    journal,
    prepare,
    start,
    units,
    wait_for_more,
)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shouwang("gateway", *args),
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def push(config: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    return cli(settings, "push-config", "C01-GW", str(config))


def answer(db: Conn, version: int, within_s: float = 20) -> tuple[str, list[str]]:
    """The gateway's answer to ``version``, once it is recorded."""
    deadline = time.monotonic() + within_s
    while True:
        row = db.execute(
            "SELECT c.state, c.errors FROM gateway_configs c JOIN gateways g ON g.id = c.gateway_id"
            " WHERE g.uid = 'C01-GW' AND c.version = %s",
            (version,),
        ).fetchone()
        assert row is not None, f"version {version} was not recorded"
        if row[0] != "pushed":
            return str(row[0]), list(row[1])
        assert time.monotonic() < deadline, f"no answer to version {version}"
        time.sleep(0.1)


def test_push_applied_refused_and_kept_out(
    db: Conn,
    settings: Settings,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],
    ingest_worker: Consumer,
    tmp_path: Path,
) -> None:
    site = modbus_site(units())
    config, buffer, ids = prepare(db, tmp_path, broker, county, site)
    db.execute("DELETE FROM gateway_configs")
    declared = cli(settings, "networks", "C01-GW", "127.0.0.0/8")
    assert declared.stdout == "C01-GW: 127.0.0.0/8\n", declared.stderr
    original = config.read_text()
    log = tmp_path / "gateway.log"
    gw = start(config, settings_env(settings), log)
    try:
        wait_for_more(buffer, 30, gw, log)

        # Three of the five devices, from another folder: the platform keeps no paths.
        keep = DEVICES[:3]
        lines = original.splitlines(keepends=True)
        fewer = "".join(ln for ln in lines if "uid:" not in ln or any(u in ln for u in keep))
        new = tmp_path / "elsewhere" / "site.yaml"
        new.parent.mkdir()
        new.write_text(fewer)
        done = push(new, settings)
        assert done.returncode == 0, done.stderr
        assert "version 1" in done.stdout
        assert answer(db, 1) == ("applied", [])
        assert config.read_text() == fewer  # kept for the next start
        wait_for_more(buffer, 60, gw, log)
        recent = [b for k, b in journal(buffer)[-30:] if k == 0]
        assert recent and {str(b["device"]) for b in recent} <= set(keep)

        # Valid for the platform, refused by the gateway: the broker changes only on the box.
        moved = tmp_path / "moved.yaml"
        moved.write_text(fewer.replace(f"port: {broker.port},", f"port: {broker.port + 1},"))
        done = push(moved, settings)
        assert done.returncode == 0, done.stderr
        state, errors = answer(db, 2)
        assert state == "refused"
        assert errors == ["broker: the broker settings change only on the box (its config file)"]
        assert config.read_text() == fewer  # the running config stays
        wait_for_more(buffer, 20, gw, log)  # and runs

        # Outside the declared networks: refused by the platform, never sent.
        away = tmp_path / "away.yaml"
        away.write_text(
            fewer.replace("networks: [127.0.0.0/8]", "networks: [127.0.0.0/8, 10.0.0.0/8]")
        )
        done = push(away, settings)
        assert done.returncode == 1
        assert "10.0.0.0/8 is not within the site's declared networks (127.0.0.0/8)" in done.stderr
        versions = db.execute("SELECT version FROM gateway_configs ORDER BY version").fetchall()
        assert [v for (v,) in versions] == [1, 2]

        # The state the gateway reports names the config it runs.
        deadline = time.monotonic() + 10
        while True:
            row = db.execute(
                "SELECT s.config_version, s.devices FROM gateway_state s"
                " JOIN gateways g ON g.id = s.gateway_id WHERE g.uid = 'C01-GW'"
            ).fetchone()
            if row == (1, 3):
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.1)
        shown = cli(settings, "state", "C01-GW")
        assert shown.returncode == 0, shown.stderr
        assert "  config_version: 1\n" in shown.stdout and "  devices: 3\n" in shown.stdout
        assert "config v2 refused" in shown.stdout and "config v1 applied" in shown.stdout
        drain_and_stop(gw, buffer, site, log)
    finally:
        if gw.poll() is None:
            gw.kill()
        declare_networks(db, "C01-GW", [])

    # Nothing buffered was lost to the change: every collected sample is stored, once.
    samples = [b for k, b in journal(buffer) if k == 0]
    expected = {(ids[str(s["device"])], int(str(s["ts"]))) for s in samples}
    rows = db.execute(
        "SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint, count(*) FROM readings"
        " WHERE device_id = ANY(%s) GROUP BY 1, 2",
        (list(ids.values()),),
    ).fetchall()
    assert {(int(d), int(t)) for d, t, _ in rows} == expected
    per_sample = {len(s["values"]) for s in samples}  # type: ignore[arg-type]
    assert {int(n) for _, _, n in rows} <= per_sample
    assert ingest_worker.stats.rejects == {}, ingest_worker.stats.rejects
