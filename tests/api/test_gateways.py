"""The site gateway for the firm that runs its site: its state and configs, a config pushed to it
(checked, versioned, sent on the real broker), a state request; any other firm gets 404 and other
roles 403."""

from __future__ import annotations

import time

import orjson

from broker.site_configs import declare_networks
from core.db import Conn
from tests.api.conftest import Api
from tests.conftest import ADMIN_PASSWORD, Broker
from tests.mqtt_helpers import peer

SITE = """\
gateway: C01-GW
broker: {host: 127.0.0.1, port: 1883, password_file: gw.secret}
buffer: {path: buffer.db}
networks: [192.168.10.0/24]
devices:
  - {uid: C01-B01-EF1, profile: residual-current-monitor, tcp: {host: 192.168.10.21}, unit: 3}
"""
YAML = {"Content-Type": "application/yaml"}


def test_only_the_owning_firm_reaches_its_gateway(api: Api, api_db: Conn) -> None:
    assert api.as_("duty_f01").get("/v1/gateways/C01-GW").status_code == 403
    assert api.as_("firm_f02").get("/v1/gateways/C01-GW").status_code == 404
    assert (
        api.as_("firm_f02")
        .post("/v1/gateways/C01-GW/configs", content=SITE, headers=YAML)
        .status_code
        == 404
    )
    assert api.as_("firm_f02").post("/v1/gateways/C01-GW/state-request").status_code == 404
    assert api.as_("firm_f01").get("/v1/gateways/NO-SUCH-GW").status_code == 404
    got = api.as_("firm_f01").get("/v1/gateways/C01-GW")
    assert got.status_code == 200, got.text
    assert got.json()["uid"] == "C01-GW"


def test_push_a_config_and_ask_for_the_state(api: Api, api_db: Conn, api_broker: Broker) -> None:
    api_db.execute("DELETE FROM gateway_configs")
    declare_networks(api_db, "C01-GW", [])
    firm = api.as_("firm_f01")
    undeclared = firm.post("/v1/gateways/C01-GW/configs", content=SITE, headers=YAML)
    assert undeclared.status_code == 422
    assert (
        "no networks are declared for C01-GW" in undeclared.json()["error"]["fields"][0]["message"]
    )

    declare_networks(api_db, "C01-GW", ["192.168.10.0/24"])
    watcher = peer(
        api_broker.host,
        api_broker.port,
        "svc-admin",
        ADMIN_PASSWORD,
        subscribe="sw/v1/g/C01-GW/cmd/#",
    )
    try:
        bad = firm.post(
            "/v1/gateways/C01-GW/configs",
            content=SITE.replace("unit: 3", "unit: 300"),
            headers=YAML,
        )
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["fields"][0]["message"].startswith(
            "config for C01-GW:6: devices[0].unit:"
        )
        outside = firm.post(
            "/v1/gateways/C01-GW/configs",
            content=SITE.replace("192.168.10.21", "192.168.11.21").replace("10.0/24]", "0.0/16]"),
            headers=YAML,
        )
        assert outside.status_code == 422
        assert [f["message"] for f in outside.json()["error"]["fields"]] == [
            "networks: 192.168.0.0/16 is not within the site's declared networks (192.168.10.0/24)",
            "devices: C01-B01-EF1 at 192.168.11.21 is outside the site's declared networks"
            " (192.168.10.0/24)",
        ]

        ok = firm.post("/v1/gateways/C01-GW/configs", json={"content": SITE})
        assert ok.status_code == 202, ok.text
        assert ok.json()["version"] == 1 and ok.json()["state"] == "pushed"
        again = firm.post("/v1/gateways/C01-GW/configs", content=SITE, headers=YAML)
        assert again.json()["version"] == 2
        asked = firm.post("/v1/gateways/C01-GW/state-request")
        assert asked.status_code == 202, asked.text

        deadline = time.monotonic() + 10
        while len(watcher.received) < 3:
            assert time.monotonic() < deadline, watcher.received
            time.sleep(0.05)
        (t1, p1), (t2, _), (t3, p3) = watcher.received[:3]
        assert (t1, t2, t3) == (
            "sw/v1/g/C01-GW/cmd/config",
            "sw/v1/g/C01-GW/cmd/config",
            "sw/v1/g/C01-GW/cmd/state",
        )
        body = orjson.loads(p1)
        assert body["version"] == 1 and body["config"] == SITE
        assert body["networks"] == ["192.168.10.0/24"]
        assert orjson.loads(p3)["ts"] == asked.json()["asked_at_ms"]
    finally:
        watcher.close()

    listed = firm.get("/v1/gateways/C01-GW/configs").json()
    assert [(c["version"], c["state"]) for c in listed] == [(2, "pushed"), (1, "pushed")]
    assert "firm_admin" in listed[0]["pushed_by"]
    gw = firm.get("/v1/gateways/C01-GW").json()
    assert gw["networks"] == ["192.168.10.0/24"] and len(gw["configs"]) == 2
    api_db.execute("DELETE FROM gateway_configs")
    declare_networks(api_db, "C01-GW", [])
