"""The duty loop end to end, on the real services and the real pages (issue 16): a lift with a
credential issued through the API publishes a trapped-passenger event to the API tests' broker;
ingest (``shouwang ingest``), analytics (``shouwang analytics``) and notify (``shouwang
notify``) run as the processes they are in production; analytics files the P0 alarm and its work
order, notify delivers it to the webhook of the duty officer on shift for the community, with
the officer's personal acknowledgement link pointing at the API served by uvicorn. Headless
Chromium at a 360x740 phone viewport signs in and sees the P0, then opens the delivered link,
presses Open, acknowledges, arrives, completes; the work order's SLA figures and the firm's
performance report change by that one work order. Screenshots of each step are kept in the
test's tmp dir and copied to ``$SHOUWANG_TEST_ARTEFACTS/duty-loop/`` when it is set.

The webhook receiver is a TEST DOUBLE (a real HTTP server on loopback that checks the Standard
Webhooks signature); everything else is the real thing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from pydantic import SecretStr

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic
from ingest.__main__ import config_from as ingest_config
from ingest.consumer import retire_session
from tests.analytics.test_db_outage import retire_analytics_session
from tests.api.browser import PHONE
from tests.api.conftest import Api, LiveServer, can_connect, eventually, live
from tests.api.pages_helpers import PAGE_SETTINGS, PASSWORD, Staff, add_staff
from tests.api.test_pages import ZONE, png
from tests.api.test_pages_browser import Shots, phone_page
from tests.conftest import Broker, settings_env
from tests.mqtt_helpers import peer
from tests.notify.test_dispatch import LOCAL_ENV, SECRET, Receiver
from tests.test_correlation_logs import keep_feed_for_analytics, start

ACK_SECRET = "duty-loop-ack-secret"
INGEST_ID = "duty-loop-ingest"
ANALYTICS_ID = "duty-loop-analytics"
NOTIFY_NAME = "duty-loop-notify"
TRAPPED = "11"  # 平层困人: responsibility/default.yaml files event code 11 as EL.TRAPPED, P0
OFFICER_PHONE = "13900000416"
NO_METRICS = {f"SHOUWANG_METRICS_PORT_{s}": "-1" for s in ("INGEST", "ANALYTICS", "NOTIFY")}


class WebhookDouble(Receiver):
    """A TEST DOUBLE of the duty officer's webhook endpoint: a real HTTP server on loopback
    that accepts what carries a valid Standard Webhooks signature (``SECRET``) and keeps it by
    delivery id. It is not anybody's real receiver."""


@pytest.fixture
def webhook() -> Iterator[WebhookDouble]:
    r = WebhookDouble()
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[LiveServer]:
    """The pages and the acknowledgement links' endpoint under uvicorn on loopback, with the
    default (Secure) cookies, which Chromium keeps for http://127.0.0.1."""
    default = Settings.model_fields["pages_cookie_secure"].default
    settings = api_settings.model_copy(
        update={
            **PAGE_SETTINGS,
            "pages_cookie_secure": default,
            "notify_ack_secret": SecretStr(ACK_SECRET),
        }
    )
    with live(settings) as s:
        yield s


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Shots]:
    s = Shots(tmp_path)
    yield s
    target = os.environ.get("SHOUWANG_TEST_ARTEFACTS")
    if target:
        out = Path(target) / "duty-loop"
        out.mkdir(parents=True, exist_ok=True)
        for path in s.taken:
            shutil.copy(path, out / path.name)


@dataclass(frozen=True)
class Lift:
    uid: str
    id: int
    password: str
    community_id: int
    firm_id: int
    firm: str  # the firm's admin token in tests/api/conftest.py's TOKENS: "firm_f01"


@pytest.fixture
def lift(api: Api, api_db: Conn, api_broker: Broker) -> Lift:
    """A lift with no trapped-passenger alarm open on it (other tests of this database leave
    theirs) and no maintenance window over it, given a credential of its own through the API,
    which the broker then accepts."""
    row = api_db.execute(
        "SELECT d.uid, d.id, c.id, f.id, f.code FROM devices d"
        " JOIN communities c ON c.id = d.community_id JOIN firms f ON f.id = c.firm_id"
        " WHERE d.device_class = 'elevator' AND d.active"
        " AND NOT device_in_maintenance(d.id, now())"
        " AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = d.id"
        "                 AND a.event_code = 'EL.TRAPPED' AND a.state <> 'cleared')"
        " AND f.code IN ('F01', 'F02')"
        " ORDER BY d.uid DESC LIMIT 1",
    ).fetchone()
    assert row is not None, "no lift free of an open EL.TRAPPED alarm and of maintenance"
    uid, device_id, community_id, firm_id = str(row[0]), int(row[1]), int(row[2]), int(row[3])
    firm = f"firm_{str(row[4]).lower()}"
    issued = api.as_(firm).post(f"/v1/devices/{uid}/credentials")
    assert issued.status_code == 201, issued.text
    password = str(issued.json()["password"])
    assert eventually(lambda: can_connect(api_broker, uid, password)), "the broker refuses it"
    return Lift(uid, device_id, password, community_id, firm_id, firm)


@pytest.fixture
def officer(api_db: Conn, lift: Lift, webhook: WebhookDouble) -> Iterator[Staff]:
    """The lift's firm's duty officer, on shift for its community now, with a page login and a
    webhook channel; the shift ends with the test (the channel stays, as the deliveries to it
    are on record)."""
    staff = add_staff(
        api_db,
        "值班员 冯",
        OFFICER_PHONE,
        firm_id=lift.firm_id,
        shift_community=lift.community_id,
    )
    api_db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, 'webhook', %s, %s)",
        (staff.id, webhook.url, SECRET),
    )
    yield staff
    api_db.execute(
        "UPDATE duty_shifts SET ends_at = now() WHERE person_id = %s AND ends_at > now()",
        (staff.id,),
    )


def report(api: Api, firm: str) -> dict[str, Any]:
    """The firm's performance report for today and tomorrow (Asia/Shanghai), as its admin
    reads it."""
    today = datetime.now(ZONE).date()
    r = api.as_(firm).get(
        f"/v1/reports/firm-performance?from={today}&to={today + timedelta(days=1)}"
    )
    assert r.status_code == 200, r.text
    firms = r.json()["firms"]
    assert len(firms) == 1, firms
    return dict(firms[0])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy answer of ``check`` within ``timeout`` seconds, else the test fails."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """Stop a service as its supervisor does (SIGTERM) and return its exit code; one that does
    not stop within 10 s is killed and gets None."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


def test_an_injected_p0_from_the_lift_to_completion_on_a_phone(
    server: LiveServer,
    chromium: Browser,
    shots: Shots,
    api: Api,
    api_db: Conn,
    api_settings: Settings,
    lift: Lift,
    officer: Staff,
    webhook: WebhookDouble,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    s = api_settings.model_copy(
        update={
            "analytics_client_id": ANALYTICS_ID,
            "notify_ack_secret": SecretStr(ACK_SECRET),
        }
    )
    env = {
        **settings_env(s),
        **LOCAL_ENV,
        **NO_METRICS,
        "SHOUWANG_ANALYTICS_CLIENT_ID": ANALYTICS_ID,
        "SHOUWANG_NOTIFY_ACK_URL": f"{server.url}/v1/ack",
    }
    before = report(api, lift.firm)

    # Signed in on a phone before the fault: nothing on the list for this lift.
    desk = phone_page(chromium)
    desk.goto(f"{server.url}/duty")
    assert "/duty/login" in desk.url
    desk.fill("input[name=phone]", officer.phone)
    desk.fill("input[name=password]", PASSWORD)
    desk.click("button[type=submit]")
    desk.wait_for_url(f"{server.url}/duty")
    assert lift.uid not in desk.inner_text("ul.cards")
    shots.take(desk, "signed-in")

    logs = {stage: tmp_path / f"{stage}.log" for stage in ("ingest", "analytics", "notify")}
    keep_feed_for_analytics(s)  # the broker keeps the feed for analytics from here on
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
            10,
            "ingest connected to the broker",
        )
        time.sleep(0.5)  # its SUBACK: the lift's messages reach it from here on
        for stage, proc in procs.items():
            assert proc.poll() is None, f"{stage} exited: {logs[stage].read_text()[-2000:]}"

        # The lift, on its own credential, reports passengers trapped.
        device = peer(s.mqtt_host, s.mqtt_port, lift.uid, lift.password)
        event = {"ts": int(time.time() * 1000), "code": TRAPPED, "active": True}
        mid = device.publish(device_topic(lift.uid, Channel.EVENT), json.dumps(event).encode())
        acks = device.wait_acks([mid], timeout=5)
        assert not acks[mid].is_failure, f"the broker refused the lift's event: {acks[mid]}"

        # Analytics files the alarm and its work order; notify delivers it to the officer.
        def filed() -> tuple[int, int] | None:
            row = api_db.execute(
                "SELECT a.id, w.id FROM alarms a JOIN work_orders w ON w.alarm_id = a.id"
                " WHERE a.device_id = %s AND a.event_code = 'EL.TRAPPED' AND a.severity = 'P0'"
                " AND a.state <> 'cleared'",
                (lift.id,),
            ).fetchone()
            return (int(row[0]), int(row[1])) if row else None

        alarm, wo = wait_for(filed, 10, "analytics filed EL.TRAPPED and its work order")

        def delivered() -> dict[str, Any] | None:
            with webhook.lock:
                for payload in webhook.accepted.values():
                    if payload.get("alarm_id") == alarm and payload.get("ack_url"):
                        return dict(payload)
            return None

        payload = wait_for(delivered, 10, "the alarm delivered to the officer's webhook")
    finally:
        if device is not None:
            device.close()
        codes = {stage: stop(proc) for stage, proc in procs.items()}
        retire_session(ingest_config(s, INGEST_ID))
        retire_analytics_session(s)
    assert codes == dict.fromkeys(procs, 0), {k: logs[k].read_text()[-2000:] for k in procs}
    assert webhook.bad_signatures == 0
    assert payload["kind"] == "alarm_opened" and payload["severity"] == "P0", payload
    assert payload["code"] == "EL.TRAPPED" and payload["device"] == lift.uid, payload
    link = str(payload["ack_url"])
    assert link.startswith(f"{server.url}/v1/ack/"), link

    # The signed-in phone lists the P0, named as the responsibility list names it.
    desk.reload()
    card = desk.locator(f'a[href="/duty/alarms/{alarm}"]')
    listed = card.inner_text()
    assert "电梯困人" in listed and "P0" in listed and lift.uid in listed, listed
    width = desk.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a 360px screen"
    shots.take(desk, "p0-listed")

    # The delivered link, tapped on a phone with no sign-in: Open, acknowledge, arrive, complete.
    mobile = phone_page(chromium)
    mobile.goto(link)
    assert "/duty/link/" in mobile.url
    shots.take(mobile, "link")
    mobile.click("button[type=submit]")
    mobile.wait_for_url(f"{server.url}/duty/alarms/{alarm}")
    assert "电梯困人" in mobile.inner_text("h1")
    shots.take(mobile, "opened")
    mobile.click("#acknowledge")
    mobile.wait_for_selector("#arrive")
    assert "已响应" in mobile.inner_text("#wo-status")
    shots.take(mobile, "acknowledged")
    mobile.click("details summary")
    mobile.fill("input[name=latitude]", "31.23")
    mobile.fill("input[name=longitude]", "121.47")
    photo = tmp_path / "site.png"
    photo.write_bytes(png())
    mobile.set_input_files("input[name=photo]", str(photo))
    mobile.click("#arrive")
    mobile.wait_for_selector("text=已到场")
    shots.take(mobile, "arrived")
    mobile.fill("textarea[name=note]", "已放人，门锁复位")
    mobile.click("#complete")
    mobile.wait_for_selector("#wo-status >> text=已完成")
    shots.take(mobile, "completed")

    # The work order's SLA figures: answered and on site within the limits, by this officer.
    detail = api.as_(lift.firm).get(f"/v1/work-orders/{wo}").json()
    assert detail["status"] == "completed", detail
    outcomes = {s["kind"]: s["outcome"] for s in detail["sla"]}
    assert outcomes["response"] == "met" and outcomes["arrival"] == "met", detail["sla"]
    assert detail["responded_at"] and detail["on_site_at"] and detail["closed_at"]
    (acked,) = api_db.execute(
        "SELECT acknowledged_by FROM alarms WHERE id = %s", (alarm,)
    ).fetchone() or ("",)
    assert acked == f"{officer.name} (duty pages, person {officer.id})", acked

    # The firm's performance report counts it: one work order more, answered and reached in time.
    after = report(api, lift.firm)
    assert after["work_orders"] == before["work_orders"] + 1, (before, after)
    for times in ("response_time", "arrival_time"):
        assert after[times]["samples"] == before[times]["samples"] + 1, (times, before, after)
    for kind in ("response", "arrival"):
        was, now = before["limits"][kind], after["limits"][kind]
        assert (now["met"], now["missed"]) == (was["met"] + 1, was["missed"]), (kind, was, now)

    # Back on the signed-in phone, the list no longer holds it.
    desk.reload()
    assert desk.locator(f'a[href="/duty/alarms/{alarm}"]').count() == 0
    shots.take(desk, "list-after")
    assert len(shots.taken) == 8
    assert time.monotonic() - started < 40, "the loop took over 40 s"
