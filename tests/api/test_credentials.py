"""Device credentials through the API, with the broker following: issue or rotate (the password
shown once), revoke; the real Mosquitto accepts and refuses accordingly."""

from __future__ import annotations

from core.db import Conn
from tests.api.conftest import Api, Ids, can_connect, eventually
from tests.conftest import NOTIFY_PASSWORD, Broker


def test_issue_rotate_and_revoke_a_devices_credential(
    api: Api, ids: Ids, api_broker: Broker, api_db: Conn
) -> None:
    uid = ids.device_in("C01", "pump_room")
    f01 = api.as_("firm_f01")
    first = f01.post(f"/v1/devices/{uid}/credentials")
    assert first.status_code == 201, first.text
    assert first.json()["broker"]["synced"] is True
    old = first.json()["password"]
    assert eventually(lambda: can_connect(api_broker, uid, old))
    stored = api_db.execute("SELECT password_hash FROM mqtt_accounts WHERE username = %s", (uid,))
    assert old not in str(stored.fetchone())  # only the hash is kept

    new = f01.post(f"/v1/devices/{uid}/credentials").json()["password"]
    assert new != old
    assert eventually(lambda: can_connect(api_broker, uid, new))
    assert not can_connect(api_broker, uid, old)
    status = f01.get(f"/v1/devices/{uid}/credentials").json()
    assert status["active"] is True
    assert "password" not in status

    revoked = f01.delete(f"/v1/devices/{uid}/credentials")
    assert revoked.status_code == 200, revoked.text
    assert eventually(lambda: not can_connect(api_broker, uid, new))
    assert f01.get(f"/v1/devices/{uid}/credentials").json()["active"] is False
    again = f01.delete(f"/v1/devices/{uid}/credentials")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_issued"
    # The platform's own accounts stay on the broker through every sync the API makes.
    assert eventually(lambda: can_connect(api_broker, "svc-notify", NOTIFY_PASSWORD))


def test_a_decommissioned_device_gets_no_credential(api: Api, ids: Ids, api_db: Conn) -> None:
    uid = ids.device_in("C02", "pump_room")
    f02 = api.as_("firm_f02")
    assert f02.patch(f"/v1/devices/{uid}", json={"active": False}).status_code == 200
    try:
        r = f02.post(f"/v1/devices/{uid}/credentials")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "inactive"
    finally:
        f02.patch(f"/v1/devices/{uid}", json={"active": True})


def test_without_a_running_broker_the_credential_stands_and_the_answer_says_so(
    ids: Ids, api_settings: object, tokens: dict[str, str], tmp_path: object
) -> None:
    from pathlib import Path

    from tests.api.conftest import in_process

    settings = api_settings.model_copy(  # type: ignore[attr-defined]
        update={
            "broker_password_file": Path(str(tmp_path)) / "passwd",
            "broker_acl_file": Path(str(tmp_path)) / "acl",
            "broker_pid_file": Path(str(tmp_path)) / "no-broker.pid",
        }
    )
    uid = ids.device_in("C01", "fire_panel")
    with in_process(settings) as client:
        r = client.request(
            "POST",
            f"/v1/devices/{uid}/credentials",
            headers={"Authorization": f"Bearer {tokens['firm_f01']}"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["password"]
    assert r.json()["broker"]["synced"] is False
    assert "shouwang broker sync" in r.json()["broker"]["detail"]
