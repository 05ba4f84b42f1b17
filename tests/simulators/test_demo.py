"""The demo's faults and roster: the fault schedule as pure logic (every few minutes, in turn,
one device at a time, long enough to handle), and the roster with its logins seeded into the
real test database (idempotent, on shift now, reachable, able to sign in)."""

from __future__ import annotations

import itertools
import math
import random
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr

from core.db import Conn
from core.settings import Settings
from shouwang.demo_commands import duty_url, link_trouble, seed
from shouwang.status import snapshot, status_line
from simulators.behaviour import behaviour_for
from simulators.demo import DEMO_SCENARIOS, demo_firm, fault_schedule, firm_devices, seed_roster
from simulators.faults import scenarios
from simulators.run import SimDevice
from simulators.stream import demo_faults
from tests.conftest import settings_env, shouwang

DEVICES = {
    "elevator": ["EL-1", "EL-2"],
    "fire_water": ["FW-1"],
    "pump_room": ["PR-1"],
    "water_quality": ["WQ-1"],
}


def test_a_fault_every_few_minutes_in_turn_the_first_a_minute_in() -> None:
    plan = fault_schedule(scenarios([]), DEVICES, start=1000.0, every_s=180.0, span_s=3600.0)
    assert [f.start for f in plan[:3]] == [1060.0, 1240.0, 1420.0]
    assert [f.scenario for f in plan[:5]] == [*DEMO_SCENARIOS, DEMO_SCENARIOS[0]]
    assert plan[0].events == ("93",) and plan[0].values["passenger_present"] == 1.0
    assert plan[2].values["pump1_fault"] == 1.0 and plan[3].values["residual_chlorine"] < 0.05
    assert all(f.end - f.start >= 1800.0 for f in plan), "time to acknowledge, arrive, complete"
    assert plan[-1].start <= 1000.0 + 3600.0


def test_a_device_carries_one_fault_at_a_time_and_busy_classes_are_skipped() -> None:
    plan = fault_schedule(scenarios([]), DEVICES, start=0.0, every_s=60.0, span_s=7200.0)
    for a in plan:
        for b in plan:
            if a is not b and a.device_uid == b.device_uid:
                assert a.end <= b.start or b.end <= a.start, (a, b)
    # one fire_water device, each fault holding it 30 min: at most one sprinkler fault per 30 min
    sprinkler = [f.start for f in plan if f.scenario == "sprinkler_pressure_drop"]
    assert sprinkler and all(b - a >= 1800.0 for a, b in itertools.pairwise(sprinkler))


def test_scenarios_without_devices_are_left_out_and_bad_settings_refused() -> None:
    only_lifts = fault_schedule(
        scenarios([]), {"elevator": ["EL-1"]}, start=0.0, every_s=10.0, span_s=100.0, hold_s=5.0
    )
    assert {f.scenario for f in only_lifts} == {"trapped_passengers"}
    assert fault_schedule(scenarios([]), {}, start=0.0, every_s=10.0, span_s=100.0) == []
    for bad in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="every_s"):
            fault_schedule(scenarios([]), DEVICES, start=0.0, every_s=bad, span_s=100.0)
    with pytest.raises(ValueError, match="first_after_s"):
        fault_schedule(
            scenarios([]), DEVICES, start=0.0, every_s=1.0, span_s=10.0, first_after_s=-1.0
        )


def test_the_stream_injects_only_among_the_demo_devices_and_not_when_off() -> None:
    rng = random.Random(1)
    devices = [
        SimDevice(uid, cls, 60.0, None, behaviour_for(cls, {}, rng))
        for cls, uids in DEVICES.items()
        for uid in uids
    ]
    plan = demo_faults(devices, {"EL-2", "PR-1"}, 120.0, 0.0, math.inf)
    assert plan and {f.device_uid for f in plan} <= {"EL-2", "PR-1"}
    assert len(plan) <= 7 * 86400 / 120 + 1, "a week of faults at most"
    assert demo_faults(devices, None, 0.0, 0.0, math.inf) == []


@pytest.fixture
def demo_people(db: Conn) -> Iterator[None]:
    """The demo's people removed afterwards, logins included (other tests clear the roster)."""
    yield
    ids = "(SELECT id FROM people WHERE name LIKE '演示 %')"
    for table in ("page_sessions", "person_logins", "duty_shifts", "contact_channels"):
        db.execute(f"DELETE FROM {table} WHERE person_id IN {ids}")
    db.execute("DELETE FROM people WHERE name LIKE '演示 %'")


@pytest.mark.usefixtures("demo_people")
def test_the_roster_is_seeded_on_shift_reachable_and_idempotent(
    db: Conn, settings: Settings
) -> None:
    db.execute(
        "DELETE FROM duty_shifts WHERE person_id IN (SELECT id FROM people WHERE name LIKE '演示 %')"
    )
    now = datetime.now(UTC)
    first = seed_roster(db, now)
    firm = demo_firm(db)
    assert firm is not None and first and first[0].role == "duty_staff"
    assert any(p.role == "maintenance_staff" for p in first)
    again = seed_roster(db, now + timedelta(minutes=1))
    assert [p.person_id for p in again] == [p.person_id for p in first]
    (communities,) = db.execute(
        "SELECT count(*) FROM communities WHERE firm_id = %s", (firm,)
    ).fetchone() or (0,)
    duty = first[0].person_id
    (shifts,) = db.execute(
        "SELECT count(*) FROM duty_shifts WHERE person_id = %s AND starts_at <= now()"
        " AND ends_at > now() + interval '6 days'",
        (duty,),
    ).fetchone() or (0,)
    assert shifts == communities, "on shift for every community of the firm, once"
    channels = db.execute(
        "SELECT kind, address FROM contact_channels WHERE person_id = %s", (duty,)
    ).fetchall()
    assert channels == [("mqtt", f"duty-{duty}")]
    # The demo's faults land where this roster is on duty.
    uids = firm_devices(db, firm)
    (outside,) = db.execute(
        "SELECT count(*) FROM devices d JOIN communities c ON c.id = d.community_id"
        " WHERE d.uid = ANY(%s) AND c.firm_id <> %s",
        (list(uids), firm),
    ).fetchone() or (1,)
    assert uids and outside == 0


@pytest.mark.usefixtures("demo_people")
def test_the_demo_logins_sign_in(db: Conn, settings: Settings) -> None:
    lines = seed(settings)
    assert lines and "duty_staff" in lines[0]
    phone, password = lines[0].split("phone ", 1)[1].split("  password ")
    (stored,) = db.execute(
        "SELECT password_hash FROM person_logins WHERE phone = %s", (phone.strip(),)
    ).fetchone() or ("",)
    assert PasswordHasher().verify(stored, password.strip())
    assert seed(settings) != lines, "a fresh password at every run"


def test_the_status_line_counts_alarms_and_acknowledgements(db: Conn, settings: Settings) -> None:
    before = snapshot(db)
    (dev,) = db.execute("SELECT id FROM devices ORDER BY id DESC LIMIT 1").fetchone() or (0,)
    db.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
        " last_triggered_at, list_version, acknowledged_at)"
        " VALUES (%s, 'DEMO.STATUS', 'P0', 'acknowledged', 'test', now(), now(), 't', now())",
        (dev,),
    )
    after = snapshot(db)
    assert (after.alarms_today, after.acknowledged_today) == (
        before.alarms_today + 1,
        before.acknowledged_today + 1,
    )
    line = status_line(after, clock="08:00:00")
    assert f"alarms {after.alarms_today:,} acknowledged {after.acknowledged_today:,}" in line
    assert f"completed {after.completed_today:,}" in line
    db.execute("DELETE FROM alarms WHERE event_code = 'DEMO.STATUS'")


@pytest.mark.usefixtures("demo_people")
def test_demo_roster_prints_the_address_the_logins_and_where_notices_go(
    settings: Settings,
) -> None:
    env = settings_env(settings) | {"SHOUWANG_API_PORT": "18999"}
    out = subprocess.run(
        shouwang("demo", "roster"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr + out.stdout
    text = out.stderr + out.stdout  # the console writes to stderr
    assert "duty page  http://127.0.0.1:18999/duty" in text
    logins = re.findall(
        r"^login +(.+?) \((\w+)\): phone (\d{11})  password (demo-\S+)$", text, re.M
    )
    assert logins and logins[0][1] == "duty_staff", text
    assert "console    http://127.0.0.1:18999/console" in text
    assert [role for _, role, *_ in logins].count("firm_manager") == 1, text
    assert f"-p {settings.mqtt_port} -u svc-admin" in text and "sw/duty/v1/+/notifications" in text
    kept = (settings.state_dir / "demo-logins.txt").read_text()
    assert all(f"password {pw}" in kept for *_, pw in logins)
    assert oct((settings.state_dir / "demo-logins.txt").stat().st_mode & 0o777) == "0o600"
    # The notices' links point at the default port, not this API's: said, with what to set.
    assert "warning    SHOUWANG_NOTIFY_ACK_URL is http://127.0.0.1:8080/v1/ack" in text


def test_the_notices_links_must_reach_this_api() -> None:
    def trouble(**kw: object) -> str:
        base: dict[str, object] = {"notify_ack_secret": SecretStr("s")}
        return link_trouble(Settings(_env_file=None, **(base | kw)))  # type: ignore[call-arg]

    assert trouble() == ""
    assert "set it" in trouble(api_port=9000)
    assert trouble(api_port=9000, notify_ack_url="http://127.0.0.1:9000/v1/ack") == ""
    assert "carry no link" in trouble(notify_ack_secret=SecretStr(""))


def test_the_duty_address_is_one_a_browser_here_opens() -> None:
    def url(host: str) -> str:
        return duty_url(Settings(_env_file=None, api_host=host, api_port=8080))  # type: ignore[call-arg]

    assert url("127.0.0.1") == "http://127.0.0.1:8080/duty"
    assert url("0.0.0.0") == url("::") == "http://127.0.0.1:8080/duty"
    assert url("::1") == "http://[::1]:8080/duty"
