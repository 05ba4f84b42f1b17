"""The acknowledgement link in a notification, through the API: GET shows the alarm and a button
(and uses nothing up), POST acknowledges once and records who; a tampered, expired or used link
is refused with a reason, and the platform without a link secret has no such page."""

from __future__ import annotations

import time

from pydantic import SecretStr

from core.db import Conn
from core.settings import Settings
from lifecycle.acknowledge import make_token
from tests.api.conftest import Api, Ids, in_process, make_alarm

SECRET = "ack-link-test-secret"


def test_get_shows_post_acknowledges_once(api_settings: Settings, ids: Ids, api_db: Conn) -> None:
    settings = api_settings.model_copy(update={"notify_ack_secret": SecretStr(SECRET)})
    alarm, wo = make_alarm(api_db, ids.devices[ids.device_in("C01", n=1)], code="EL.LINK")
    token = make_token(SECRET, alarm, "值班员 李", int(time.time()) + 600)
    with in_process(settings) as client:
        page = client.request("GET", f"/v1/ack/{token}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "EL.LINK" in page.text and 'method="post"' in page.text
        page = client.request("GET", f"/v1/ack/{token}")  # a link preview uses nothing up
        assert page.status_code == 200
        assert api_db.execute("SELECT state FROM alarms WHERE id = %s", (alarm,)).fetchone() == (
            "active",
        )

        done = client.request("POST", f"/v1/ack/{token}", headers={"Accept": "application/json"})
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "acknowledged"
        assert done.json()["acknowledged_by"] == "值班员 李"
        assert api_db.execute("SELECT status FROM work_orders WHERE id = %s", (wo,)).fetchone() == (
            "responded",
        )

        again = client.request("POST", f"/v1/ack/{token}")
        assert again.status_code == 409
        assert "already used" in again.json()["error"]["message"]

        tampered = client.request("GET", f"/v1/ack/{token[:-2]}xx")
        assert tampered.status_code == 400
        expired = make_token(SECRET, alarm, "值班员 李", int(time.time()) - 1)
        gone = client.request("POST", f"/v1/ack/{expired}")
        assert gone.status_code == 410 and "expired" in gone.json()["error"]["message"]


def test_without_a_link_secret_there_is_no_link_page(api: Api, ids: Ids, api_db: Conn) -> None:
    alarm, _ = make_alarm(api_db, ids.devices[ids.device_in("C01", n=1)], code="EL.NOLINK")
    token = make_token("whatever", alarm, "x", int(time.time()) + 600)
    r = api.as_("duty_c01").get(f"/v1/ack/{token}")
    assert r.status_code == 404
