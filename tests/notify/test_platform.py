"""Platform alarms reach the platform operators on shift: each opening and clearing once, on
their own channels, signed like every notification, whatever number of dispatchers run; nobody
on shift means a warning and a retry. Real database, real loopback receivers."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.db import Conn
from core.settings import Settings
from lifecycle.platform import PlatformKind
from notify.dispatcher import Dispatcher
from notify.messages import PLATFORM_KINDS, render
from tests.conftest import clear_people
from tests.notify.test_dispatch import LOCAL, SECRET, Receiver, RobotDouble


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def clear_platform(db: Conn) -> None:
    db.execute("TRUNCATE platform_deliveries, platform_notices, platform_alarms, platform_shifts")


@pytest.fixture
def platform(db: Conn) -> Iterator[None]:
    """Nobody on the roster, no platform alarms; the platform shifts are removed afterwards (so
    other tests can clear the roster)."""
    clear_platform(db)
    clear_people(db)
    yield
    clear_platform(db)


def operator(
    db: Conn,
    name: str,
    channels: list[tuple[str, str, str | None]],
    *,
    starts: timedelta = timedelta(hours=-1),
    ends: timedelta = timedelta(hours=1),
    role: str = "platform_operator",
    language: str = "zh",
) -> int:
    """A person with these (kind, address, secret) channels on a platform shift from now +
    ``starts`` to now + ``ends``."""
    (pid,) = db.execute(
        "INSERT INTO people (name, role, language) VALUES (%s, %s, %s) RETURNING id",
        (name, role, language),
    ).fetchone() or (0,)
    for kind, address, secret in channels:
        db.execute(
            "INSERT INTO contact_channels (person_id, kind, address, secret)"
            " VALUES (%s, %s, %s, %s)",
            (pid, kind, address, secret),
        )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO platform_shifts (person_id, starts_at, ends_at) VALUES (%s, %s, %s)",
        (pid, now + starts, now + ends),
    )
    return int(pid)


def open_alarm(db: Conn, kind: str = "feed_silent", subject: str = "", severity: str = "P1") -> int:
    (aid,) = db.execute(
        "INSERT INTO platform_alarms (kind, subject, severity, detail) VALUES (%s, %s, %s,"
        " '{\"silent_s\": 120}') RETURNING id",
        (kind, subject, severity),
    ).fetchone() or (0,)
    return int(aid)


def clear_alarm(db: Conn, aid: int, reason: str = "data flows again") -> None:
    db.execute(
        "UPDATE platform_alarms SET state = 'cleared', cleared_at = clock_timestamp(),"
        " cleared_reason = %s, triggers = 3 WHERE id = %s",
        (reason, aid),
    )


def dispatcher(settings: Settings, http: httpx.Client, name: str = "d-platform") -> Dispatcher:
    return Dispatcher(
        settings.database_url,
        name,
        http,
        housekeeping_s=0,
        backoff_base_s=0.05,
        lease_s=5,
        addresses=LOCAL,
    )


def test_opening_and_clearing_reach_the_operator_on_shift_once(
    settings: Settings, db: Conn, receiver: Receiver, platform: None
) -> None:
    on = operator(db, "平台值班 周", [("webhook", receiver.url, SECRET)])
    operator(db, "下班 吴", [("webhook", receiver.url + "?off", SECRET)], ends=timedelta(0))
    # The firms' duty staff hear nothing of the platform's trouble.
    (community,) = db.execute("SELECT min(id) FROM communities").fetchone() or (0,)
    duty = operator(
        db, "值班员 李", [("webhook", receiver.url + "?duty", SECRET)], role="duty_staff"
    )
    db.execute("DELETE FROM platform_shifts WHERE person_id = %s", (duty,))
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, now() - interval '1 hour', now() + interval '1 hour')",
        (community, duty),
    )
    aid = open_alarm(db, subject="ingest")
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http)
        d.run_once()
        d.run_once()
        assert [p["kind"] for p in receiver.accepted.values()] == ["platform_alarm_opened"]
        clear_alarm(db, aid)
        for _ in range(3):
            d.run_once()
        d.close()
    assert receiver.bad_signatures == 0, "signed like every notification"
    assert receiver.requests == 2, "each once, to the operator on shift only"
    (channel,) = db.execute(
        "SELECT id FROM contact_channels WHERE person_id = %s", (on,)
    ).fetchone() or (0,)
    notices = db.execute(
        "SELECT id, kind, done_at IS NOT NULL, undeliverable FROM platform_notices ORDER BY id"
    ).fetchall()
    assert [(k, done, u) for _, k, done, u in notices] == [
        ("platform_alarm_opened", True, False),
        ("platform_alarm_cleared", True, False),
    ]
    assert list(receiver.accepted) == [f"p{n}.{channel}" for n, *_ in notices], (
        "delivery ids of their own, never mistaken for an outbox row's"
    )
    opened, cleared = receiver.accepted.values()
    assert (opened["alarm"], opened["subject"], opened["severity"]) == (
        "feed_silent",
        "ingest",
        "P1",
    )
    assert opened["platform_alarm_id"] == aid and "cleared_at" not in opened
    assert "ack_url" not in opened, "no acknowledgement links"
    assert cleared["cleared_reason"] == "data flows again" and cleared["triggers"] == 3
    assert db.execute("SELECT status, count(*) FROM platform_deliveries GROUP BY 1").fetchall() == [
        ("accepted", 2)
    ]
    assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


def test_robots_render_platform_alarms_in_the_operators_language(
    settings: Settings, db: Conn, platform: None
) -> None:
    robots = RobotDouble()
    try:
        operator(
            db,
            "Operator Zhou",
            [
                (
                    "wecom",
                    f"http://qyapi.weixin.qq.com:{robots.port}/cgi-bin/webhook/send?key=k",
                    None,
                ),
                (
                    "dingtalk",
                    f"http://oapi.dingtalk.com:{robots.port}/robot/send?access_token=t",
                    "SECdemo",
                ),
            ],
            language="en",
        )
        open_alarm(db, "stage_restarted", "ingest-1", "P2")
        with httpx.Client(timeout=5) as http:
            d = dispatcher(settings, http)
            d.run_once()
            d.close()
    finally:
        robots.close()
    bodies = {urllib.parse.urlparse(p).path: b for p, b in robots.calls}
    wecom = str(bodies["/cgi-bin/webhook/send"]["markdown"]["content"])  # type: ignore[index]
    assert wecom.startswith("**[P2] Platform alarm: Stage restarted**")
    assert "Subject: ingest-1" in wecom
    assert str(bodies["/robot/send"]["markdown"]["title"]).startswith("[P2] Platform alarm")  # type: ignore[index]
    title, text = render(
        {
            "kind": "platform_alarm_cleared",
            "alarm": "feed_silent",
            "severity": "P1",
            "opened_at": "2026-11-27T01:00:00+00:00",
            "cleared_at": "2026-11-27T01:05:00+00:00",
            "cleared_reason": "data flows again",
            "triggers": 4,
        }
    )
    assert title == "[P1] 平台告警解除: 数据中断"
    assert "发生: 2026-11-27 09:00" in text and "解除: 2026-11-27 09:05" in text
    assert "原因: data flows again" in text and "触发次数: 4" in text


def test_nobody_on_shift_is_a_warning_and_a_retry(
    settings: Settings,
    db: Conn,
    receiver: Receiver,
    platform: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_alarm(db, "mass_silence", "C01", "P0")
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http)
        d.run_once()
        assert any("nobody on a platform shift" in r.getMessage() for r in caplog.records)
        assert db.execute("SELECT done_at IS NULL, attempts FROM platform_notices").fetchall() == [
            (True, 1)
        ]
        operator(db, "平台值班 周", [("webhook", receiver.url, SECRET)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not receiver.accepted:
            time.sleep(0.06)
            d.run_once()
        d.close()
    assert [p["alarm"] for p in receiver.accepted.values()] == ["mass_silence"]


def test_an_alarm_that_opened_and_cleared_unseen_is_told_in_order(
    settings: Settings, db: Conn, receiver: Receiver, platform: None
) -> None:
    operator(db, "平台值班 周", [("webhook", receiver.url, SECRET)])
    aid = open_alarm(db, "detector_quarantined", "C01-B01-EL1")
    clear_alarm(db, aid, "state rebuilt")
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http)
        d.run_once()
        assert [p["kind"] for p in receiver.accepted.values()] == ["platform_alarm_opened"], (
            "the clearing waits until the opening is done"
        )
        d.run_once()
        d.close()
    assert [p["kind"] for p in receiver.accepted.values()] == [
        "platform_alarm_opened",
        "platform_alarm_cleared",
    ]


def test_a_permanently_bad_operator_channel_does_not_stop_the_others(
    settings: Settings, db: Conn, receiver: Receiver, platform: None
) -> None:
    operator(db, "平台值班 周", [("webhook", "http://[::1", SECRET)])
    operator(db, "平台值班 吴", [("webhook", receiver.url, SECRET)])
    open_alarm(db)
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http)
        d.run_once()
        d.run_once()
        d.close()
    assert len(receiver.accepted) == 1
    assert sorted(db.execute("SELECT status, permanent FROM platform_deliveries").fetchall()) == [
        ("accepted", False),
        ("failed", True),
    ]
    assert db.execute(
        "SELECT done_at IS NOT NULL, undeliverable FROM platform_notices"
    ).fetchall() == [(True, False)]


def test_several_dispatchers_tell_each_platform_alarm_once(
    settings: Settings, db: Conn, receiver: Receiver, platform: None
) -> None:
    operator(db, "平台值班 周", [("webhook", receiver.url, SECRET)])
    operator(db, "平台值班 吴", [("webhook", receiver.url + "?2", SECRET)])
    alarms = [open_alarm(db, "detector_quarantined", f"dev-{i}") for i in range(15)]
    for aid in alarms[:5]:
        clear_alarm(db, aid)
    expected = 2 * (len(alarms) + 5)
    with httpx.Client(timeout=5) as http:
        ds = [dispatcher(settings, http, f"d-platform-{i}") for i in range(3)]
        threads = [threading.Thread(target=d.run, kwargs={"poll_s": 0.02}) for d in ds]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(receiver.accepted) < expected:
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            for d in ds:
                d.stop()
            for t in threads:
                t.join(15)
    assert len(receiver.accepted) == expected
    assert receiver.requests == expected, "nothing was posted twice"
    assert db.execute(
        "SELECT count(*), count(DISTINCT (notice_id, channel_id)) FROM platform_deliveries"
        " WHERE status = 'accepted'"
    ).fetchone() == (expected, expected)
    assert db.execute("SELECT count(*) FROM platform_notices WHERE done_at IS NULL").fetchone() == (
        0,
    )


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_platform_alarm_kind_has_a_name(language: str) -> None:
    """A new kind of platform alarm must come with its names: the operators on shift would
    otherwise read the raw kind string."""
    assert sorted(PLATFORM_KINDS[language]) == sorted(k.value for k in PlatformKind)
