"""One fault, followed through the logs (issue 17): ingest, analytics and notify run as the
processes they are in production, their logs piped to files (JSON lines, as under CI and in
containers). A lift publishes one trapped-passenger event; the duty staff's webhook receives the
alarm. Every line of every log is a JSON event with its stage; one correlation id is in ingest's
line for the stored event, analytics' lines for the alarm and its work order, and notify's line
for the delivery that reached the receiver; no line holds a password, key or signed link."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.correlation import correlation_id
from core.db import Conn
from core.feed import EVENTS_TOPIC, READINGS_TOPIC
from core.mqtt import new_client
from core.settings import Settings
from core.wire import Channel, device_topic
from ingest.__main__ import config_from as ingest_config
from ingest.consumer import retire_session
from simulators.county import County
from tests.analytics.feed_helpers import clean
from tests.analytics.test_db_outage import retire_analytics_session, wait_for
from tests.conftest import (
    ADMIN_PASSWORD,
    ANALYTICS_PASSWORD,
    INGEST_PASSWORD,
    NOTIFY_PASSWORD,
    clear_people,
    settings_env,
    shouwang,
)
from tests.mqtt_helpers import peer
from tests.notify.test_db_outage import SlowReceiver
from tests.notify.test_dispatch import LOCAL_ENV, SECRET

INGEST_ID = "corr-ingest"
ANALYTICS_ID = "corr-analytics"
NOTIFY_NAME = "corr-notify"
TRAPPED = "11"  # 平层困人, the elevator's event code (docs/wire-contract.md §7): EL.TRAPPED, P0
# A webhook's address is a credential too (a robot's key, a token in its path).
PATH_TOKEN = "p4thT0kenOfTheHook"


@dataclass(frozen=True)
class Lift:
    uid: str
    secret: str
    community_id: int


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    r = SlowReceiver(delay_s=0.0)
    yield r
    r.close()


@pytest.fixture
def lift(db: Conn, county: tuple[County, dict[str, str]], receiver: SlowReceiver) -> Lift:
    """A lift that publishes directly (its own account), with one person on duty now for its
    community, reachable on the receiver; no alarm, notification or maintenance window left by
    other tests."""
    clean(db)
    db.execute("TRUNCATE maintenance_windows CASCADE")
    clear_people(db)
    secrets = county[1]
    row = db.execute(
        "SELECT uid, community_id FROM devices WHERE device_class = 'elevator' AND active"
        " AND uid = ANY(%s) ORDER BY uid LIMIT 1",
        (list(secrets),),
    ).fetchone()
    assert row is not None, "the test county has no lift with an account of its own"
    uid, community_id = str(row[0]), int(row[1])
    (person,) = db.execute(
        "INSERT INTO people (name, role) VALUES ('值班员 钱', 'duty_staff') RETURNING id"
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, 'webhook', %s, %s)",
        (person, f"{receiver.url}/{PATH_TOKEN}", SECRET),
    )
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, %s, %s)",
        (community_id, person, now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    return Lift(uid, secrets[uid], community_id)


def keep_feed_for_analytics(s: Settings) -> None:
    """Open analytics' persistent session and subscribe it to ingest's feed, as its first start
    does: the broker keeps what ingest publishes for it from here on, however late it comes."""
    client, props = new_client(
        s.analytics_client_id,
        s.mqtt_analytics_username,
        s.mqtt_analytics_password.get_secret_value(),
        persistent=True,
        tls=None,
    )
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe([(READINGS_TOPIC, 1), (EVENTS_TOPIC, 1)])
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(s.mqtt_host, s.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert subscribed.wait(10), "analytics' session could not subscribe to the feed"
    finally:
        client.disconnect()
        client.loop_stop()


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:  # stdout too: a stage prints nothing but its log
        return subprocess.Popen(shouwang(*args), env=env, stdout=f, stderr=f)


def lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log as the JSON event it must be."""
    out = []
    for n, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"{log.name} line {n} is not JSON: {line!r}")
        assert isinstance(event, dict), f"{log.name} line {n} is not an object: {line!r}"
        out.append(event)
    return out


def test_one_correlation_id_follows_a_fault_from_the_wire_to_its_delivery(
    settings: Settings, db: Conn, lift: Lift, receiver: SlowReceiver, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"analytics_client_id": ANALYTICS_ID})
    env = (
        settings_env(s)
        | LOCAL_ENV
        | {
            "SHOUWANG_LOG_FORMAT": "json",
            "SHOUWANG_ANALYTICS_CLIENT_ID": ANALYTICS_ID,
            "COLUMNS": "300",
        }
    )
    logs = {stage: tmp_path / f"{stage}.log" for stage in ("ingest", "analytics", "notify")}
    keep_feed_for_analytics(s)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    device = None
    try:
        procs["ingest"] = start(["ingest", "--client-id", INGEST_ID], env, logs["ingest"])
        procs["analytics"] = start(["analytics"], env, logs["analytics"])
        procs["notify"] = start(["notify", "--name", NOTIFY_NAME], env, logs["notify"])
        wait_for(
            lambda: (
                "connected as" in logs["ingest"].read_text() or procs["ingest"].poll() is not None
            ),
            30,
            "ingest connected",
        )
        time.sleep(0.5)  # its SUBACK: devices' messages reach it from here on
        for stage, proc in procs.items():
            assert proc.poll() is None, f"{stage} exited: {logs[stage].read_text()[-2000:]}"

        ts_ms = int(time.time() * 1000)
        device = peer(s.mqtt_host, s.mqtt_port, lift.uid, lift.secret)
        event = {"ts": ts_ms, "code": TRAPPED, "active": True, "detail": {"floor": 7}}
        device.wait_acks(
            [device.publish(device_topic(lift.uid, Channel.EVENT), json.dumps(event).encode())]
        )
        wait_for(lambda: receiver.accepted, 25, "the alarm delivered to the duty staff's webhook")
        wait_for(  # notify logs the delivery right after recording it
            lambda: (
                db.execute("SELECT count(*) FROM deliveries WHERE status = 'accepted'").fetchone()
                == (1,)
            ),
            10,
            "the delivery recorded",
        )
        time.sleep(0.2)
    finally:
        if device is not None:
            device.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {stage: proc.wait(30) for stage, proc in procs.items()}
        retire_session(ingest_config(s, INGEST_ID))
        retire_analytics_session(s)
    assert codes == dict.fromkeys(procs, 0), {k: logs[k].read_text()[-2000:] for k in procs}

    # Every line of every log is a JSON event of its stage.
    events = {stage: lines(log) for stage, log in logs.items()}
    for stage, evs in events.items():
        assert evs, f"{stage} logged nothing"
        assert {e.get("stage") for e in evs} == {stage}, evs

    # The alarm, its work order and its delivery, as the database and the receiver have them.
    alarm = db.execute(
        "SELECT a.id, w.id FROM alarms a JOIN devices d ON d.id = a.device_id"
        " LEFT JOIN work_orders w ON w.alarm_id = a.id"
        " WHERE d.uid = %s AND a.event_code = 'EL.TRAPPED'",
        (lift.uid,),
    ).fetchall()
    assert len(alarm) == 1, alarm
    alarm_id, work_order_id = alarm[0]
    assert work_order_id is not None, "EL.TRAPPED files a work order"
    [(delivery, payload)] = receiver.accepted.items()
    assert payload["alarm_id"] == alarm_id and payload["kind"] == "alarm_opened"

    # One correlation id, the message's, from the stored event to the delivery.
    cid = correlation_id(lift.uid, ts_ms)

    def with_cid(stage: str) -> list[dict[str, Any]]:
        return [e for e in events[stage] if e.get("cid") == cid]

    stored = with_cid("ingest")
    assert [e["message"] for e in stored] == [f"event stored: {lift.uid} {TRAPPED} raised"], events[
        "ingest"
    ]
    assert stored[0]["level"] == "info" and stored[0]["ts_ms"] == ts_ms
    filed = {e["message"].split(":")[0]: e for e in with_cid("analytics")}
    assert set(filed) == {
        f"alarm {alarm_id} opened",
        f"work order {work_order_id} filed for alarm {alarm_id}",
    }, events["analytics"]
    assert filed[f"alarm {alarm_id} opened"]["alarm_id"] == alarm_id
    assert (
        filed[f"work order {work_order_id} filed for alarm {alarm_id}"]["work_order_id"]
        == work_order_id
    )
    sent = with_cid("notify")
    assert [(e["delivery"], e["outcome"], e["alarm_id"]) for e in sent] == [
        (delivery, "accepted", alarm_id)
    ], events["notify"]
    assert sent[0]["work_order_id"] == work_order_id and sent[0]["channel"] == "webhook"
    # The id is the only thing that names the fault in every stage.
    assert all(cid not in json.dumps(e) for st in events for e in events[st] if e.get("cid") != cid)

    # No secret anywhere: the services' passwords, the lift's, the webhook's signing secret,
    # the acknowledgement secret and the signed link the duty staff got.
    text = "\n".join(log.read_text(encoding="utf-8") for log in logs.values())
    ack_token = str(payload.get("ack_url", "")).rsplit("/", 1)[-1]
    assert ack_token, "the delivery carries an acknowledgement link"
    secrets = {
        "ingest password": INGEST_PASSWORD,
        "analytics password": ANALYTICS_PASSWORD,
        "notify password": NOTIFY_PASSWORD,
        "admin password": ADMIN_PASSWORD,
        "device secret": lift.secret,
        "webhook secret": SECRET,
        "webhook secret (base64)": SECRET.removeprefix("whsec_"),
        "ack secret": s.notify_ack_secret.get_secret_value(),
        "ack token": ack_token,
        "webhook address token": PATH_TOKEN,
    }
    assert [name for name, secret in secrets.items() if secret in text] == []
