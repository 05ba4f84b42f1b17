"""Phone channels through the API: a person's SMS and voice numbers are taken when they are
mainland mobile numbers and refused, naming what to fix, when not; the firms' provider
accounts are never part of the API's answers."""

from __future__ import annotations

from tests.api.conftest import Api


def test_sms_and_voice_numbers_are_checked_when_written(api: Api) -> None:
    f01 = api.as_("firm_f01")
    pid = f01.post("/v1/people", json={"name": "钱短信", "role": "duty_staff"}).json()["id"]
    for kind, address in [("sms", "12345"), ("voice", "+1 2025550100"), ("sms", "1380013800x")]:
        r = f01.post(f"/v1/people/{pid}/channels", json={"kind": kind, "address": address})
        assert r.status_code == 422, r.text
        [error] = r.json()["error"]["fields"]
        assert error["field"] == "body.address", error
        assert "mainland China mobile" in error["message"] or "spaces" in error["message"]
    for kind, address in [("sms", "13800138000"), ("voice", "+8613800138000")]:
        r = f01.post(f"/v1/people/{pid}/channels", json={"kind": kind, "address": address})
        assert r.status_code == 201, r.text
    person = f01.get(f"/v1/people/{pid}").json()
    assert sorted((c["kind"], c["address"]) for c in person["channels"]) == [
        ("sms", "13800138000"),
        ("voice", "+8613800138000"),
    ]
    schema = f01.get("/openapi.json")
    assert schema.status_code == 200 and "/v1/people" in schema.text
    assert "access_key" not in schema.text, "no route shows a provider account"
