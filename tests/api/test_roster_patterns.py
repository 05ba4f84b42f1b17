"""Roster patterns through the API: a firm rosters 早/中/夜 for three teams rotating weekly, and
who is on duty follows the pattern's shifts across the night and the rotation; a change replaces
only the shifts to come; a handover moves one shift; another firm cannot reach the pattern; each
invalid field answers 422 naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.db import Conn
from lifecycle import roster_patterns as rules
from notify.recipients import on_duty as recipients
from tests.api.conftest import Api, Ids
from tests.api.test_audit import actor, last_id, logged

SH = ZoneInfo("Asia/Shanghai")
SLOTS: list[dict[str, Any]] = [
    {"name": "早", "start": "07:00", "minutes": 480},
    {"name": "中", "start": "15:00", "minutes": 480},
    {"name": "夜", "start": "23:00", "minutes": 480},  # across midnight
]


def person(api: Api, name: str, role: str = "duty_staff", who: str = "firm_f01") -> int:
    r = api.as_(who).post("/v1/people", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.fixture(scope="module")
def trio(api: Api) -> tuple[int, int, int]:
    """Three duty-room people of F01 (轮班甲, 轮班乙, 轮班丙), shared by this module's tests."""
    a, b, c = (person(api, f"轮班{x}") for x in "甲乙丙")
    return a, b, c


def spec(community: int, teams: list[list[int]], **overrides: Any) -> dict[str, Any]:
    return {
        "community_id": community,
        "role": "duty_staff",
        "name": "三班倒",
        "starts_on": "2023-03-06",
        "ends_on": "2023-03-19",
        "rotate_every_days": 7,
        "slots": SLOTS,
        "teams": teams,
        **overrides,
    }


def pattern_shifts(db: Conn, pattern_id: int) -> list[tuple[int, int, datetime, datetime, str]]:
    """(id, person, starts_at, ends_at, slot) of the pattern's shifts, by start."""
    rows = db.execute(
        "SELECT id, person_id, starts_at, ends_at, slot FROM duty_shifts WHERE pattern_id = %s"
        " ORDER BY starts_at, id",
        (pattern_id,),
    ).fetchall()
    return [(int(i), int(p), s, e, str(slot)) for i, p, s, e, slot in rows]


def on_duty(api: Api, community: int, at: datetime, role: str = "duty_staff") -> list[int]:
    r = api.as_("duty_c01").get(
        f"/v1/communities/{community}/on-duty", params={"at": at.isoformat(), "role": role}
    )
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["people"]]


def test_a_weekly_three_shift_pattern_puts_the_right_person_on_duty(
    api: Api, ids: Ids, api_db: Conn, trio: tuple[int, int, int]
) -> None:
    c01 = ids.communities["C01"]
    a, b, c = trio
    f01 = api.as_("firm_f01")
    start = last_id(api_db)
    made = f01.post("/v1/roster-patterns", json=spec(c01, [[a], [b], [c]]))
    assert made.status_code == 201, made.text
    pattern = made.json()
    assert pattern["slots"] == SLOTS and pattern["teams"] == [[a], [b], [c]]
    assert len(pattern_shifts(api_db, pattern["id"])) == 14 * 3

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2023, 3, 5, hour, minute, tzinfo=SH) + timedelta(days=day)

    # Week 1 (days 1-7): 早 a, 中 b, 夜 c; week 2: 早 b, 中 c, 夜 a.
    expected = [
        (at(1, 6, 59), []),  # before the first slot
        (at(1, 7), [a]),
        (at(1, 14, 59), [a]),
        (at(1, 15), [b]),
        (at(1, 23, 30), [c]),
        (at(2, 0, 0), [c]),  # the night crosses midnight
        (at(2, 3), [c]),
        (at(7, 12), [a]),
        (at(8, 0, 0), [c]),  # day 8 starts week 2; day 7's night runs on until 07:00
        (at(8, 6, 59), [c]),
        (at(8, 7), [b]),
        (at(8, 15), [c]),
        (at(8, 23), [a]),
        (at(9, 2), [a]),
        (at(14, 12), [b]),
        (at(15, 6, 59), [a]),  # the last night ends the day after the last day
        (at(15, 7), []),
    ]
    assert [(t, on_duty(api, c01, t)) for t, _ in expected] == expected
    # Notify tells whoever the pattern's shifts put on duty, as for any shift.
    for who in (a, c):
        r = f01.post(f"/v1/people/{who}/channels", json={"kind": "email", "address": f"{who}@x.cn"})
        assert r.status_code == 201, r.text
    for t, held in [(at(1, 8), a), (at(2, 3), c), (at(8, 23, 30), a)]:
        assert [r.person_id for r in recipients(api_db, c01, "firm_duty_room", t)] == [held]
    assert recipients(api_db, c01, "firm_duty_room", at(8, 12)) == [], "b has no channel"
    # The pattern and its shifts are in the firm's part of the audit log.
    [entry] = logged(api_db, start, "roster_patterns", resource_id=str(pattern["id"]))
    assert entry["action"] == "insert" and entry["firm_ids"] == [ids.firms["F01"]]
    assert entry["actor"] == actor(api_db, "firm_f01")
    assert len(logged(api_db, start, "duty_shifts")) == 42

    # The roster by day: the pattern's slots and a single shift (slot null).
    single = f01.post(
        "/v1/shifts",
        json={
            "community_id": c01,
            "role": "duty_staff",
            "person_id": a,
            "starts_at": at(2, 9).isoformat(),
            "ends_at": at(2, 11).isoformat(),
        },
    )
    assert single.status_code == 201, single.text
    roster = api.as_("township_t01").get(
        f"/v1/communities/{c01}/roster",
        params={"from": "2023-03-07", "to": "2023-03-13", "role": "duty_staff"},
    )
    assert roster.status_code == 200, roster.text
    days = roster.json()["days"]
    assert [d["date"] for d in days] == [f"2023-03-{d:02}" for d in range(7, 14)]
    assert [(s["slot"], s["person_id"]) for s in days[0]["shifts"]] == [
        ("早", a),
        (None, a),
        ("中", b),
        ("夜", c),
    ]
    assert [(s["slot"], s["person_name"]) for s in days[6]["shifts"]] == [
        ("早", "轮班乙"),
        ("中", "轮班丙"),
        ("夜", "轮班甲"),
    ]
    assert {s["pattern_id"] for d in days for s in d["shifts"] if s["slot"]} == {pattern["id"]}
    listed = f01.get("/v1/roster-patterns", params={"community_id": c01}).json()["items"]
    assert pattern["id"] in [p["id"] for p in listed]
    assert f01.get(f"/v1/roster-patterns/{pattern['id']}").json() == pattern


def test_a_change_replaces_only_the_shifts_to_come(api: Api, ids: Ids, api_db: Conn) -> None:
    c01 = ids.communities["C01"]
    a, b, c, d = (person(api, f"项目{x}", "project_manager") for x in "甲乙丙丁")
    today = datetime.now(SH).date()
    body = spec(
        c01,
        [[a], [b], [c]],
        role="project_manager",
        starts_on=str(today - timedelta(days=3)),
        ends_on=str(today + timedelta(days=10)),
    )
    f01 = api.as_("firm_f01")
    made = f01.post("/v1/roster-patterns", json=body)
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    before = pattern_shifts(api_db, pid)
    assert len(before) == 14 * 3

    changed = {**body, "teams": [[d], [c], [b, a]], "name": "换人"}
    sent = datetime.now(UTC)
    put = f01.request("PUT", f"/v1/roster-patterns/{pid}", json=changed)
    assert put.status_code == 200, put.text
    done = datetime.now(UTC)
    assert put.json()["teams"] == [[d], [c], [b, a]] and put.json()["name"] == "换人"
    after = pattern_shifts(api_db, pid)
    kept = [s for s in before if s[2] <= sent]
    assert kept and [s for s in after if s[2] <= sent] == kept, "what has started stays"
    new = rules.build(
        community_id=c01,
        role="project_manager",
        starts_on=today - timedelta(days=3),
        ends_on=today + timedelta(days=10),
        slots=[(s["name"], s["start"], s["minutes"]) for s in SLOTS],
        teams=[[d], [c], [b, a]],
        rotate_every_days=7,
    )
    ahead = [
        (s.person_id, s.starts_at, s.ends_at, s.slot)
        for s in rules.shifts(new, done, datetime.max.replace(tzinfo=UTC))
        if s.starts_at > done
    ]
    assert [(p, s, e, slot) for _, p, s, e, slot in after if s > done] == ahead
    old_ids = {s[0] for s in before if s[2] > done}
    assert old_ids and not old_ids & {s[0] for s in after}, "the future was written anew"
    noon = datetime.combine(today + timedelta(days=5), datetime.min.time(), SH) + timedelta(
        hours=12
    )
    assert on_duty(api, c01, noon, "project_manager") == [
        s.person_id for s in rules.shifts(new, noon, noon + timedelta(seconds=1))
    ]

    deleted = f01.delete(f"/v1/roster-patterns/{pid}")
    assert deleted.status_code == 204
    gone = datetime.now(UTC)
    assert f01.get(f"/v1/roster-patterns/{pid}").status_code == 404
    assert pid not in [p["id"] for p in f01.get("/v1/roster-patterns").json()["items"]]
    left = pattern_shifts(api_db, pid)
    assert left and all(s[2] <= gone for s in left), "history stays, the future goes"
    assert [s for s in left if s[2] <= sent] == kept
    assert on_duty(api, c01, noon, "project_manager") == []


def test_a_handover_moves_one_shift_and_is_audited(api: Api, ids: Ids, api_db: Conn) -> None:
    c01 = ids.communities["C01"]
    a, b, c, relief = (person(api, f"交班{x}", "firm_manager") for x in "甲乙丙丁")
    today = datetime.now(SH).date()
    f01 = api.as_("firm_f01")
    made = f01.post(
        "/v1/roster-patterns",
        json=spec(
            c01,
            [[a], [b], [c]],
            role="firm_manager",
            starts_on=str(today + timedelta(days=1)),
            ends_on=str(today + timedelta(days=3)),
        ),
    )
    assert made.status_code == 201, made.text
    shifts = pattern_shifts(api_db, made.json()["id"])
    sid, holder, starts, _, _ = shifts[4]  # day 2's 中
    start = last_id(api_db)
    moved = f01.post(f"/v1/shifts/{sid}/handover", json={"person_id": relief})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {
        "id": sid,
        "community_id": c01,
        "role": "firm_manager",
        "person_id": relief,
        "starts_at": moved.json()["starts_at"],
        "ends_at": moved.json()["ends_at"],
        "pattern_id": made.json()["id"],
        "slot": "中",
    }
    assert datetime.fromisoformat(moved.json()["starts_at"]) == starts
    middle = starts + timedelta(hours=1)
    assert on_duty(api, c01, middle, "firm_manager") == [relief]
    assert [s[1] for s in pattern_shifts(api_db, made.json()["id"])] == [
        relief if s[0] == sid else s[1] for s in shifts
    ], "only that shift moved"
    [entry] = logged(api_db, start, "duty_shifts", resource_id=str(sid))
    assert (entry["action"], entry["before"], entry["after"]) == (
        "update",
        {"person_id": holder},
        {"person_id": relief},
    )
    assert entry["actor"] == actor(api_db, "firm_f01") and entry["firm_ids"] == [ids.firms["F01"]]

    # A shift in progress is split at now; one that is over is history.
    now = datetime.now(UTC)
    running = f01.post(
        "/v1/shifts",
        json={
            "community_id": c01,
            "role": "firm_manager",
            "person_id": a,
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    ).json()
    split = f01.post(f"/v1/shifts/{running['id']}/handover", json={"person_id": b})
    assert split.status_code == 200, split.text
    rest = split.json()
    assert rest["id"] != running["id"] and rest["person_id"] == b
    assert datetime.fromisoformat(rest["ends_at"]) == now + timedelta(hours=1)
    first = f01.get(f"/v1/shifts/{running['id']}").json()
    assert first["person_id"] == a and first["ends_at"] == rest["starts_at"]
    assert on_duty(api, c01, datetime.now(UTC), "firm_manager") == [b]
    over = f01.post(
        "/v1/shifts",
        json={
            "community_id": c01,
            "role": "firm_manager",
            "person_id": a,
            "starts_at": "2023-01-01T08:00:00+08:00",
            "ends_at": "2023-01-01T16:00:00+08:00",
        },
    ).json()
    late = f01.post(f"/v1/shifts/{over['id']}/handover", json={"person_id": b})
    assert late.status_code == 409 and late.json()["error"]["code"] == "shift_over"

    # Only someone of the same role who may hold it, in the caller's scope.
    pm = person(api, "交班项目", "project_manager")
    theirs = person(api, "外司", "firm_manager", who="firm_f02")
    for who, why in [(pm, "firm_manager"), (theirs, "firm_manager"), (relief, "already")]:
        r = f01.post(f"/v1/shifts/{sid}/handover", json={"person_id": who})
        assert r.status_code == 422, r.text
        [error] = r.json()["error"]["fields"]
        assert error["field"] == "body.person_id" and why in error["message"]
    assert (
        api.as_("firm_f02")
        .post(f"/v1/shifts/{sid}/handover", json={"person_id": theirs})
        .status_code
        == 404
    )
    assert (
        api.as_("duty_c01").post(f"/v1/shifts/{sid}/handover", json={"person_id": a}).status_code
        == 403
    )
    # Nobody stays on duty now for the tests that follow.
    for gone in (running["id"], rest["id"]):
        assert f01.delete(f"/v1/shifts/{gone}").status_code == 204
    assert f01.delete(f"/v1/roster-patterns/{made.json()['id']}").status_code == 204
    assert on_duty(api, c01, datetime.now(UTC), "firm_manager") == []


def test_another_firm_cannot_see_or_roster_this_community(
    api: Api, ids: Ids, trio: tuple[int, int, int]
) -> None:
    c01 = ids.communities["C01"]
    a, b, c = trio
    days = {"starts_on": "2022-01-03", "ends_on": "2022-01-09"}  # apart from the other tests'
    mine = api.as_("firm_f01").post("/v1/roster-patterns", json=spec(c01, [[a], [b], [c]], **days))
    assert mine.status_code == 201
    pid = mine.json()["id"]
    f02 = api.as_("firm_f02")
    assert f02.get(f"/v1/roster-patterns/{pid}").status_code == 404
    assert pid not in [p["id"] for p in f02.get("/v1/roster-patterns").json()["items"]]
    assert (
        f02.request(
            "PUT", f"/v1/roster-patterns/{pid}", json=spec(c01, [[a], [b], [c]])
        ).status_code
        == 404
    )
    assert f02.delete(f"/v1/roster-patterns/{pid}").status_code == 404
    assert f02.get(f"/v1/communities/{c01}/roster").status_code == 404
    assert api.as_("duty_c02").get(f"/v1/communities/{c01}/roster").status_code == 404
    x, y, z = (person(api, f"外司{n}", who="firm_f02") for n in "甲乙丙")
    theirs = f02.post("/v1/roster-patterns", json=spec(c01, [[x], [y], [z]], **days))
    assert theirs.status_code == 422
    assert theirs.json()["error"]["fields"][0]["field"] == "body.community_id"
    # Nor may this firm put the other firm's people on its own roster.
    borrowed = api.as_("firm_f01").post(
        "/v1/roster-patterns", json=spec(c01, [[a], [y], [c]], **days)
    )
    assert borrowed.status_code == 422
    assert borrowed.json()["error"]["fields"] == [
        {
            "field": "body.teams[1][0]",
            "message": f"no active duty_staff of this community's firm with id {y}",
        }
    ]
    assert api.as_("duty_c01").get(f"/v1/roster-patterns/{pid}").status_code == 200
    assert (
        api.as_("duty_c01").post("/v1/roster-patterns", json=spec(c01, [[a], [b], [c]])).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slots": [SLOTS[0], {**SLOTS[1], "start": "25:00"}, SLOTS[2]]}, "body.slots[1].start"),
        ({"slots": [SLOTS[0], {**SLOTS[1], "start": "3pm"}, SLOTS[2]]}, "body.slots[1].start"),
        ({"slots": [SLOTS[0], {**SLOTS[1], "minutes": 0}, SLOTS[2]]}, "body.slots[1].minutes"),
        ({"slots": [SLOTS[0], SLOTS[1], {**SLOTS[2], "minutes": 1441}]}, "body.slots[2].minutes"),
        ({"slots": [SLOTS[0], SLOTS[1], {**SLOTS[2], "minutes": 7.5}]}, "body.slots[2].minutes"),
        ({"slots": [SLOTS[0], SLOTS[1], {**SLOTS[2], "start": "14:00"}]}, "body.slots[2].start"),
        ({"slots": [SLOTS[0], SLOTS[1], {**SLOTS[2], "name": "早"}]}, "body.slots[2].name"),
        ({"slots": []}, "body.slots"),
        ({"teams": "two"}, "body.teams"),
        ({"teams": [[0], [1], [2]]}, "body.teams[0][0]"),
        ("fewer teams", "body.teams"),
        ("an empty team", "body.teams[1]"),
        ("twice in a team", "body.teams[0][1]"),
        ({"ends_on": "2023-03-05"}, "body.ends_on"),
        ({"ends_on": "2024-03-07"}, "body.ends_on"),  # 367 days; 366 is the most
        ({"starts_on": "2023-02-30"}, "body.starts_on"),
        ({"rotate_every_days": 0}, "body.rotate_every_days"),
        ({"role": "platform_operator"}, "body.role"),
        ({"community_id": 0}, "body.community_id"),
    ],
)
def test_each_invalid_field_is_named(
    api: Api, ids: Ids, trio: tuple[int, int, int], change: Any, field: str
) -> None:
    c01 = ids.communities["C01"]
    a, b, c = trio
    teams = {
        "fewer teams": [[a], [b]],
        "an empty team": [[a], [], [c]],
        "twice in a team": [[a, a], [b], [c]],
    }
    body = spec(c01, [[a], [b], [c]])
    body |= {"teams": teams[change]} if isinstance(change, str) else change
    r = api.as_("firm_f01").post("/v1/roster-patterns", json=body)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == [field], r.text


def test_the_roster_range_is_checked(api: Api, ids: Ids) -> None:
    c01 = ids.communities["C01"]
    get = api.as_("firm_f01").get
    for params, field in [
        ({"from": "2023-03-10", "to": "2023-03-09"}, "query.to"),
        ({"from": "2023-01-01", "to": "2023-06-01"}, "query.to"),
        ({"from": "yesterday"}, "query.from"),
        ({"from": "9999-12-30", "to": "9999-12-31"}, "query.from"),
        ({"to": "0001-01-01"}, "query.to"),
    ]:
        r = get(f"/v1/communities/{c01}/roster", params=params)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["fields"][0]["field"] == field
    week = get(f"/v1/communities/{c01}/roster").json()["days"]
    assert week[0]["date"] == str(datetime.now(SH).date()) and len(week) == 7


def test_the_api_writes_patterns_and_analytics_cannot_read_them(api_db: Conn) -> None:
    def may(role: str, privilege: str) -> bool:
        row = api_db.execute(
            "SELECT has_table_privilege(%s, 'roster_patterns', %s)", (role, privilege)
        ).fetchone()
        assert row is not None
        return bool(row[0])

    assert all(may("shouwang_api", x) for x in ("SELECT", "INSERT", "UPDATE", "DELETE"))
    assert not may("shouwang_analytics", "SELECT")
    assert not may("shouwang_notify", "INSERT")
