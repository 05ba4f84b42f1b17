"""Account namespaces: no device or gateway can take a duty app's or a service's broker account,
by registration, by credential issue or by CSV import, and one bad account row never stops the
broker's sync (the real Mosquitto keeps following the registry)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from broker.accounts import issue_person
from broker.acl import Account
from broker.sync import ServiceAccount, screen, service_accounts
from core.db import Conn
from core.errors import ConfigError
from core.namespaces import account_problem, service_username_problem, uid_problem
from tests.api.conftest import Api, Ids, can_connect, eventually
from tests.conftest import ADMIN_PASSWORD, Broker

# -- the rule (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize("uid", ["duty-17", "DUTY-1", "svc-admin", "Svc-ingest"])
def test_reserved_prefixes_are_refused_in_any_case(uid: str) -> None:
    problem = uid_problem(uid)
    assert problem is not None and "reserved" in problem and "choose another uid" in problem


@pytest.mark.parametrize("uid", ["E0001", "C01-B1-EL-1", "dutyroom-1", "svc_1", "7.duty-1"])
def test_ordinary_uids_pass(uid: str) -> None:
    assert uid_problem(uid) is None


@pytest.mark.parametrize("uid", ["", "-E1", "a/b", "a+b", "a#", "a:b", "a b", "x" * 65, "é1"])
def test_uids_mqtt_or_the_password_file_would_misread_are_refused(uid: str) -> None:
    assert "not a valid uid" in (uid_problem(uid) or "")


def test_service_usernames_must_carry_the_service_prefix() -> None:
    assert service_username_problem("svc-ingest") is None
    assert service_username_problem("ingest") is not None
    assert service_username_problem("svc-a:b") is not None
    with pytest.raises(ConfigError) as e:
        service_accounts(
            [ServiceAccount("E0001", "pw", "admin", "SHOUWANG_MQTT_ADMIN_PASSWORD")], {}
        )
    assert e.value.where == "SHOUWANG_MQTT_ADMIN_USERNAME"


def test_screen_leaves_out_each_bad_row_and_keeps_the_rest() -> None:
    rows = [
        Account("E0001", "device", "h1"),
        Account("svc-admin", "device", "h2"),  # registered before the rule
        Account("duty-3", "person", "h3"),
        Account("duty-x", "person", "h4"),
        Account("G1", "gateway", "h5"),
        Account("G2", "robot", "h6"),
    ]
    services = [ServiceAccount("svc-admin", "pw", "admin", "SHOUWANG_MQTT_ADMIN_PASSWORD")]
    good, skipped = screen(rows, services)
    assert [a.username for a in good] == ["E0001", "duty-3", "G1"]
    assert len(skipped) == 3
    assert "svc-admin" in skipped[0] and "reserved" in skipped[0]
    assert account_problem("duty-x", "person") is not None and "duty-x" in skipped[1]
    assert "unknown account kind" in skipped[2]


# -- on the API and the real broker -----------------------------------------------------------------


@contextmanager
def legacy_device(db: Conn, uid: str, community_id: int) -> Iterator[int]:
    """A device registered before the namespace rule existed (the rule is NOT VALID for old
    rows): the constraint is lifted for the insert, then put back as the migration left it."""
    db.execute("ALTER TABLE devices DROP CONSTRAINT devices_uid_namespace")
    try:
        row = db.execute(
            "INSERT INTO devices (uid, device_class, community_id) VALUES (%s, 'elevator', %s)"
            " RETURNING id",
            (uid, community_id),
        ).fetchone()
    finally:
        db.execute(
            "ALTER TABLE devices ADD CONSTRAINT devices_uid_namespace"
            " CHECK (uid !~* '^(svc|duty)-') NOT VALID"
        )
    assert row is not None
    try:
        yield int(row[0])
    finally:
        db.execute("DELETE FROM mqtt_accounts WHERE device_id = %s", (row[0],))
        db.execute("DELETE FROM devices WHERE id = %s", (row[0],))


def test_registering_a_device_under_a_reserved_prefix_is_refused(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    f01 = api.as_("firm_f01")
    for uid in ("duty-17", "svc-admin"):
        r = f01.post(
            "/v1/devices",
            json={"uid": uid, "device_class": "elevator", "community_id": ids.communities["C01"]},
        )
        assert r.status_code == 422, r.text
        assert "reserved" in r.text and "choose another uid" in r.text
    csv = "uid,device_class,community\nE-NS-OK,elevator,C01\nduty-1,elevator,C01\n"
    r = f01.post(
        "/v1/devices/import?issue_credentials=true",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_csv"
    assert "row 3.uid" in r.text and "reserved" in r.text
    assert api_db.execute("SELECT count(*) FROM devices WHERE uid = 'E-NS-OK'").fetchone() == (0,)
    # The database holds the rule too, for whatever bypasses the API.
    with pytest.raises(Exception, match="devices_uid_namespace"):
        api_db.execute(
            "INSERT INTO devices (uid, device_class, community_id) VALUES ('duty-9', 'elevator', %s)",
            (ids.communities["C01"],),
        )


def test_a_device_named_like_a_duty_app_cannot_take_over_the_persons_account(
    api: Api, ids: Ids, api_broker: Broker, api_db: Conn
) -> None:
    person = api_db.execute(
        "INSERT INTO people (name, role, firm_id) VALUES ('namespace test', 'duty_staff', %s)"
        " RETURNING id",
        (ids.firms["F01"],),
    ).fetchone()
    assert person is not None
    username, password = issue_person(api_db, int(person[0]))
    f02 = api.as_("firm_f02")
    # Any credential change through the API syncs the broker: the person's account is there.
    other = ids.device_in("C02", "pump_room")
    assert f02.post(f"/v1/devices/{other}/credentials").status_code == 201
    assert eventually(lambda: can_connect(api_broker, username, password))
    try:
        with legacy_device(api_db, username, ids.communities["C02"]):
            r = f02.post(f"/v1/devices/{username}/credentials")
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "account_conflict"
            assert "cannot" in r.json()["error"]["message"]
            r = f02.delete(f"/v1/devices/{username}/credentials")
            assert r.status_code == 409 and r.json()["error"]["code"] == "not_issued"
            kind = api_db.execute(
                "SELECT kind, person_id, revoked_at FROM mqtt_accounts WHERE username = %s",
                (username,),
            ).fetchone()
            assert kind == ("person", person[0], None)
            assert f02.post(f"/v1/devices/{other}/credentials").status_code == 201
            assert can_connect(api_broker, username, password), "the real account still works"
    finally:
        api_db.execute("DELETE FROM mqtt_accounts WHERE person_id = %s", (person[0],))
        api_db.execute("DELETE FROM people WHERE id = %s", (person[0],))


def test_one_bad_account_row_does_not_stop_the_sync(
    api: Api, ids: Ids, api_broker: Broker, api_db: Conn
) -> None:
    f01 = api.as_("firm_f01")
    uid = ids.device_in("C01", "elevator", 1)
    issued = f01.post(f"/v1/devices/{uid}/credentials")
    assert issued.status_code == 201, issued.text
    password = issued.json()["password"]
    assert eventually(lambda: can_connect(api_broker, uid, password))
    with legacy_device(api_db, "svc-admin", ids.communities["C01"]) as dev:
        api_db.execute(
            "INSERT INTO mqtt_accounts (username, kind, device_id, password_hash)"
            " VALUES ('svc-admin', 'device', %s, 'not-a-hash')",
            (dev,),
        )
        revoked = f01.delete(f"/v1/devices/{uid}/credentials")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["broker"]["synced"] is True
        assert "1 registry account(s) left out" in revoked.json()["broker"]["detail"]
        assert eventually(lambda: not can_connect(api_broker, uid, password)), (
            "the revocation reached the broker despite the bad row"
        )
        assert can_connect(api_broker, "svc-admin", ADMIN_PASSWORD), "the service keeps its name"
