"""The live stream over real HTTP (uvicorn): committed alarm and work-order changes arrive as
Server-Sent Events, only those in the caller's scope."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from core.db import Conn
from tests.api.conftest import Ids, LiveServer, make_alarm


def listen(
    server: LiveServer, token: str, params: dict[str, Any], when_ready: Callable[[], None]
) -> list[tuple[str, dict[str, Any]]]:
    """The events of one bounded stream; ``when_ready`` runs once the stream listens."""
    events: list[tuple[str, dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=server.url, timeout=15) as client,
        client.stream("GET", "/v1/stream", params=params, headers=headers) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                if event == "ready":
                    when_ready()
                else:
                    events.append((event, json.loads(line.removeprefix("data: "))))
    return events


def test_the_stream_carries_changes_in_scope_only(
    live_server: LiveServer, tokens: dict[str, str], ids: Ids, api_db: Conn
) -> None:
    made: dict[str, tuple[int, int | None]] = {}

    def changes() -> None:
        made["C02"] = make_alarm(api_db, ids.devices[ids.device_in("C02")], code="EL.STREAM")
        made["C01"] = make_alarm(api_db, ids.devices[ids.device_in("C01")], code="EL.STREAM")

    events = listen(live_server, tokens["duty_c01"], {"max_events": 2, "max_seconds": 10}, changes)
    alarm, wo = made["C01"]
    assert [(e, d["id"], d["op"], d["state"]) for e, d in events] == [
        ("alarm", alarm, "insert", "active"),
        ("work_order", wo, "insert", "occurred"),
    ]
    assert {d["community_id"] for _, d in events} == {ids.communities["C01"]}


def test_a_unit_hears_only_of_its_work_orders(
    live_server: LiveServer, tokens: dict[str, str], ids: Ids, api_db: Conn
) -> None:
    made: dict[str, tuple[int, int | None]] = {}

    def changes() -> None:
        made["C02"] = make_alarm(api_db, ids.devices[ids.device_in("C02")], code="EL.STREAM2")
        made["C01"] = make_alarm(api_db, ids.devices[ids.device_in("C01")], code="EL.STREAM2")

    events = listen(live_server, tokens["unit_el1"], {"max_events": 1, "max_seconds": 10}, changes)
    assert [(e, d["id"]) for e, d in events] == [("work_order", made["C01"][1])]


def test_a_stream_ends_after_max_seconds_and_needs_a_token(
    live_server: LiveServer, tokens: dict[str, str]
) -> None:
    assert listen(live_server, tokens["regulator"], {"max_seconds": 0.3}, lambda: None) == []
    r = httpx.get(f"{live_server.url}/v1/stream", timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_a_client_that_reconnects_gets_what_it_missed_in_its_scope_then_live_changes(
    live_server: LiveServer, tokens: dict[str, str], ids: Ids, api_db: Conn
) -> None:
    made: dict[str, tuple[int, int | None]] = {}
    device = ids.devices[ids.device_in("C01")]

    def make(key: str, device_id: int = device) -> None:
        made[key] = make_alarm(api_db, device_id, code=f"EL.{key}")

    first = listen(
        live_server,
        tokens["duty_c01"],
        {"max_events": 1, "max_seconds": 10},
        lambda: make("RESUME0"),
    )
    assert [(e, d["id"]) for e, d in first] == [("alarm", made["RESUME0"][0])]
    last_seen = first[0][1]["seq"]
    # Gone (its work order's change is still unsent); meanwhile changes in and out of scope.
    make("RESUME1")
    make("OTHER", ids.devices[ids.device_in("C02")])

    events: list[tuple[str, dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {tokens['duty_c01']}", "Last-Event-ID": str(last_seen)}
    event_ids: list[int] = []
    with (
        httpx.Client(base_url=live_server.url, timeout=15) as client,
        client.stream(
            "GET", "/v1/stream", params={"max_events": 4, "max_seconds": 10}, headers=headers
        ) as r,
    ):
        event = ""
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_ids.append(int(line.removeprefix("id: ")))
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event != "ready":
                events.append((event, json.loads(line.removeprefix("data: "))))
                if len(events) == 3:  # what it missed is sent: now a live change
                    make("RESUME2")
    assert [(e, d["id"]) for e, d in events] == [
        ("work_order", made["RESUME0"][1]),
        ("alarm", made["RESUME1"][0]),
        ("work_order", made["RESUME1"][1]),
        ("alarm", made["RESUME2"][0]),
    ]
    assert event_ids == [d["seq"] for _, d in events] == sorted(event_ids)
    assert event_ids[0] > last_seen


def test_a_client_back_after_the_log_forgot_is_told_of_the_gap(
    live_server: LiveServer, tokens: dict[str, str], ids: Ids, api_db: Conn
) -> None:
    make_alarm(api_db, ids.devices[ids.device_in("C01")], code="EL.GAP0")
    (newest,) = api_db.execute("SELECT max(seq) FROM change_log").fetchone() or (0,)
    api_db.execute("DELETE FROM change_log WHERE seq <= %s - 1", (newest,))  # as after 7 days
    lines: list[str] = []
    headers = {"Authorization": f"Bearer {tokens['duty_c01']}"}
    with (
        httpx.Client(base_url=live_server.url, timeout=15) as client,
        client.stream(
            "GET",
            "/v1/stream",
            params={"after": 1, "max_events": 1, "max_seconds": 5},
            headers=headers,
        ) as r,
    ):
        lines = [line for line in r.iter_lines() if line.startswith(("event:", "data:"))]
    assert lines[2] == "event: gap"
    gap = json.loads(lines[3].removeprefix("data: "))
    assert (gap["after"], gap["oldest_kept"]) == (1, newest)
    assert lines[4:6][0] == "event: work_order", "then what is still kept"
