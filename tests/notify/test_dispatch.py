"""The dispatcher against a real local HTTP receiver (a receiver of ours, on loopback): signed
webhooks (Standard Webhooks, checked with the reference verifier) to whoever is on duty, a receiver that is down for a while gets everything once it is
back, exactly once, and two dispatchers never send the same notification twice."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from psycopg.types.json import Jsonb
from standardwebhooks import Webhook, WebhookVerificationError

from core.channel_addresses import AddressPolicy, system_resolve
from core.db import Conn
from core.settings import Settings
from notify.dispatcher import Dispatcher
from tests.conftest import clear_people, free_port

SECRET = "whsec_c2hvdXdhbmcgdGVzdCB3ZWJob29rIHNlY3JldCAzMkI="


def _local_resolve(host: str, port: int) -> list[str]:
    """The robots' official hosts are the doubles on loopback here; other names as the system
    resolves them."""
    if host in ("qyapi.weixin.qq.com", "oapi.dingtalk.com"):
        return ["127.0.0.1"]
    return system_resolve(host, port)


# The test receivers are plain http on loopback: allowed, as an operator would for local testing.
LOCAL = AddressPolicy(
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    resolve=_local_resolve,
)
LOCAL_ENV = {
    "SHOUWANG_NOTIFY_ALLOW_HTTP": "true",
    "SHOUWANG_NOTIFY_ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
}


class Receiver:
    """A webhook receiver: verifies signatures, drops repeats by delivery id, can be down."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.accepted: dict[str, dict[str, object]] = {}
        self.requests = 0
        self.bad_signatures = 0
        self.down = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                with receiver.lock:
                    receiver.requests += 1
                    if receiver.down:
                        self.send_response(503)
                        self.end_headers()
                        return
                    try:
                        Webhook(SECRET).verify(body, dict(self.headers.items()))
                    except WebhookVerificationError:
                        receiver.bad_signatures += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                    receiver.accepted.setdefault(self.headers["webhook-id"], json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def duty(db: Conn, receiver: Receiver) -> tuple[int, int]:
    """A duty person on shift now for the first community, reachable by webhook; returns
    (community id, person id)."""
    clear_people(db)
    (community_id,) = db.execute("SELECT id FROM communities ORDER BY id LIMIT 1").fetchone() or (
        0,
    )
    (person,) = db.execute(
        "INSERT INTO people (name, role) VALUES ('值班员 李', 'duty_staff') RETURNING id"
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES (%s, 'webhook', %s, %s)",
        (person, receiver.url, SECRET),
    )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at) VALUES (%s, 'duty_staff', %s, %s, %s)",
        (community_id, person, now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    # Somebody whose shift is over gets nothing.
    (off,) = db.execute(
        "INSERT INTO people (name, role) VALUES ('下班 王', 'duty_staff') RETURNING id"
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES (%s, 'webhook', %s, %s)",
        (off, receiver.url + "?off", SECRET),
    )
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at) VALUES (%s, 'duty_staff', %s, %s, %s)",
        (community_id, off, now - timedelta(hours=5), now - timedelta(hours=1)),
    )
    return int(community_id), int(person)


def outbox_rows(db: Conn, community_id: int, n: int) -> list[int]:
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions, work_order_breaches, escalation_steps CASCADE"
    )
    (dev,) = db.execute(
        "SELECT id FROM devices WHERE community_id = %s ORDER BY id LIMIT 1", (community_id,)
    ).fetchone() or (0,)
    ids = []
    for i in range(n):
        (alarm,) = db.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at, last_triggered_at,"
            " list_version) VALUES (%s, %s, 'P0', 'active', 'test', now(), now(), 't') RETURNING id",
            (dev, f"T.{i}"),
        ).fetchone() or (0,)
        (oid,) = db.execute(
            "INSERT INTO outbox (kind, alarm_id, community_id, severity, responsible_party, payload)"
            " VALUES ('alarm_opened', %s, %s, 'P0', 'firm_duty_room', %s) RETURNING id",
            (alarm, community_id, Jsonb({"alarm_id": alarm, "code": f"T.{i}"})),
        ).fetchone() or (0,)
        ids.append(int(oid))
    return ids


def test_signed_webhook_reaches_the_person_on_duty_only(
    settings: Settings, db: Conn, receiver: Receiver, duty: tuple[int, int]
) -> None:
    community_id, _ = duty
    [oid] = outbox_rows(db, community_id, 1)
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(settings.database_url, "d1", http, addresses=LOCAL)
        assert d.run_once() == 1
        d.conn.close()
    assert list(receiver.accepted) == [
        f"{oid}.{db.execute('SELECT min(id) FROM contact_channels').fetchone()[0]}"
    ]  # type: ignore[index]
    assert receiver.bad_signatures == 0
    assert db.execute(
        "SELECT done_at IS NOT NULL FROM outbox WHERE id = %s", (oid,)
    ).fetchone() == (True,)
    log = db.execute(
        "SELECT status, http_status, latency_ms > 0 FROM deliveries WHERE outbox_id = %s", (oid,)
    ).fetchall()
    assert log == [("accepted", 204, True)]


def test_receiver_down_then_back_gets_everything_exactly_once(
    settings: Settings, db: Conn, receiver: Receiver, duty: tuple[int, int]
) -> None:
    community_id, _ = duty
    ids = outbox_rows(db, community_id, 5)
    receiver.down = True
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(settings.database_url, "d1", http, backoff_base_s=0.2, addresses=LOCAL)
        for _ in range(3):
            d.run_once()
            time.sleep(0.3)
        assert not receiver.accepted
        receiver.down = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and db.execute(
            "SELECT count(*) FROM outbox WHERE done_at IS NULL"
        ).fetchone() != (0,):
            d.run_once()
            time.sleep(0.1)
        d.conn.close()
    assert len(receiver.accepted) == 5
    accepted = db.execute(
        "SELECT outbox_id, count(*) FROM deliveries WHERE status = 'accepted' GROUP BY 1"
    ).fetchall()
    assert sorted(accepted) == [(i, 1) for i in ids]
    failed = db.execute("SELECT count(*) FROM deliveries WHERE status = 'failed'").fetchone()
    assert failed is not None and failed[0] >= 5, "every failed attempt is in the delivery log"


def test_two_dispatchers_never_send_the_same_notification_twice(
    settings: Settings, db: Conn, receiver: Receiver, duty: tuple[int, int]
) -> None:
    community_id, _ = duty
    outbox_rows(db, community_id, 40)
    with httpx.Client(timeout=5) as http:
        ds = [
            Dispatcher(settings.database_url, f"d{i}", http, batch=5, addresses=LOCAL)
            for i in range(2)
        ]
        threads = [threading.Thread(target=d.run, kwargs={"poll_s": 0.05}) for d in ds]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(receiver.accepted) < 40:
            time.sleep(0.1)
        for d in ds:
            d.stop()
        for t in threads:
            t.join(10)
    assert len(receiver.accepted) == 40
    assert receiver.requests == 40, "no notification was posted twice"
    by = dict(db.execute("SELECT claimed_by, count(*) FROM outbox GROUP BY 1").fetchall())
    assert set(by) == {"d0", "d1"}, f"both dispatchers worked: {by}"


class RobotDouble:
    """A local HTTP double of the WeCom and DingTalk robot endpoints (no real robot is reachable
    here): records each request and answers as the documented APIs do, ``{"errcode": 0}``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                double.calls.append((self.path, body))
                out = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *_: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_robots_and_email_in_the_readers_language(
    settings: Settings, db: Conn, duty: tuple[int, int]
) -> None:
    import base64
    import hashlib
    import hmac
    import urllib.parse

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from notify.channels import Smtp

    class Inbox(Message):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[object] = []

        def handle_message(self, message: object) -> None:
            self.messages.append(message)

    community_id, _ = duty
    robots = RobotDouble()
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        db.execute("DELETE FROM contact_channels")
        db.execute("UPDATE people SET language = 'en'")
        person = db.execute(
            "SELECT person_id FROM duty_shifts WHERE ends_at > now() LIMIT 1"
        ).fetchone()
        assert person is not None
        db.execute(
            "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES"
            " (%s, 'wecom', %s, NULL), (%s, 'dingtalk', %s, 'SECdemo'), (%s, 'email', 'duty@example.org', NULL)",
            (
                person[0],
                f"http://qyapi.weixin.qq.com:{robots.port}/cgi-bin/webhook/send?key=k",
                person[0],
                f"http://oapi.dingtalk.com:{robots.port}/robot/send?access_token=t",
                person[0],
            ),
        )
        [oid] = outbox_rows(db, community_id, 1)
        db.execute(
            "UPDATE outbox SET payload = payload || %s WHERE id = %s",
            (
                Jsonb(
                    {
                        "kind": "alarm_opened",
                        "severity": "P0",
                        "name": {"zh": "电梯困人", "en": "Trapped passengers"},
                        "community": "C01",
                        "device": "C01-B01-EL1",
                        "opened_at": "2026-11-27T01:00:00+00:00",
                        "deadlines": {"response": "2026-11-27T01:01:00+00:00"},
                    }
                ),
                oid,
            ),
        )
        with httpx.Client(timeout=5) as http:
            d = Dispatcher(
                settings.database_url,
                "d1",
                http,
                smtp=Smtp("127.0.0.1", smtp_port, "shouwang@example.org"),
                addresses=LOCAL,
            )
            d.run_once()
            d.conn.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not inbox.messages:
            time.sleep(0.05)
    finally:
        smtp.stop()
        robots.close()
    paths = {urllib.parse.urlparse(p).path: (p, b) for p, b in robots.calls}
    wecom = paths["/cgi-bin/webhook/send"][1]
    assert wecom["msgtype"] == "markdown"
    assert "[P0] Alarm: Trapped passengers" in wecom["markdown"]["content"]  # type: ignore[index]
    assert "Due (respond): 2026-11-27 09:01" in wecom["markdown"]["content"]  # type: ignore[index]
    ding_path, ding = paths["/robot/send"]
    q = urllib.parse.parse_qs(urllib.parse.urlparse(ding_path).query)
    expected = base64.b64encode(
        hmac.new(b"SECdemo", f"{q['timestamp'][0]}\nSECdemo".encode(), hashlib.sha256).digest()
    )
    assert q["sign"][0] == expected.decode(), "DingTalk's signature"
    assert ding["markdown"]["title"].startswith("[P0] Alarm")  # type: ignore[index]
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["Subject"] == "[P0] Alarm: Trapped passengers"  # type: ignore[index]
    assert db.execute("SELECT count(*) FROM deliveries WHERE status = 'accepted'").fetchone() == (
        3,
    )
    assert db.execute(
        "SELECT done_at IS NOT NULL FROM outbox WHERE id = %s", (oid,)
    ).fetchone() == (True,)


def test_messages_are_chinese_by_default_with_the_next_deadline_in_local_time() -> None:
    from notify.messages import render

    title, text = render(
        {
            "kind": "alarm_opened",
            "severity": "P1",
            "code": "PR.FLOOD",
            "name": {"zh": "泵房水淹", "en": "Pump-room flood"},
            "community": "C03",
            "device": "C03-PR",
            "deadlines": {"response": None, "arrival": "2026-11-27T02:00:00+00:00"},
        },
        ack_url="https://example.org/ack/x",
    )
    assert title == "[P1] 告警: 泵房水淹"
    assert "时限 (到场): 2026-11-27 10:00" in text
    assert "确认: https://example.org/ack/x" in text


def test_escalation_reaches_the_next_party_unless_someone_acknowledged(
    settings: Settings, db: Conn, receiver: Receiver, duty: tuple[int, int]
) -> None:
    from analytics.__main__ import build
    from analytics.store import apply
    from lifecycle.acknowledge import acknowledge
    from lifecycle.alarms import Observation

    community_id, _ = duty
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions,"
        " work_order_breaches, escalation_steps CASCADE"
    )
    now = datetime.now(UTC)
    (pm,) = db.execute(
        "INSERT INTO people (name, role) VALUES ('项目经理 赵', 'project_manager') RETURNING id"
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES (%s, 'webhook', %s, %s)",
        (pm, receiver.url + "?pm", SECRET),
    )
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'project_manager', %s, %s, %s)",
        (community_id, pm, now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    elevators = [
        r[0]
        for r in db.execute(
            "SELECT id FROM devices WHERE community_id = %s AND device_class = 'elevator' ORDER BY id LIMIT 2",
            (community_id,),
        )
    ]
    service = build(settings, clock="data")
    ten_minutes_ago = time.time() - 600
    for dev in elevators:  # trapped passengers, ten minutes ago: the first escalation steps are due
        apply(
            service.conn,
            service.lifecycle.observe(
                Observation(dev, "EL.TRAPPED", ten_minutes_ago, True, "test")
            ),
            entry_of=service._entry,
            devices=service.devices,
            calendar=service.calendar,
            list_version="t",
        )
    service.conn.close()
    (acked_alarm,) = db.execute(
        "SELECT id FROM alarms WHERE device_id = %s", (elevators[1],)
    ).fetchone() or (0,)
    acknowledge(db, acked_alarm, actor="维保 张", at=now)

    with httpx.Client(timeout=5) as http:
        d = Dispatcher(settings.database_url, "d1", http, addresses=LOCAL)
        for _ in range(3):
            d.run_once()
        d.conn.close()
    escalations = db.execute(
        "SELECT work_order_id, notify_party FROM outbox WHERE kind = 'escalation'"
    ).fetchall()
    (open_wo,) = db.execute(
        "SELECT id FROM work_orders WHERE device_id = %s", (elevators[0],)
    ).fetchone() or (0,)
    assert escalations and all(wo == open_wo for wo, _ in escalations), (
        "only the unacknowledged one escalates"
    )
    to_pm = [p for k, p in receiver.accepted.items() if p.get("kind") == "escalation"]
    assert any(p.get("notify") == "project_manager" for p in to_pm)
    fired = db.execute(
        "SELECT count(*) FROM escalation_steps WHERE work_order_id = %s AND fired_at IS NOT NULL",
        (open_wo,),
    ).fetchone()
    assert fired is not None and fired[0] == len(escalations)
