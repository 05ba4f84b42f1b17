"""A resident's complaint reaches the people on duty, on the real database and the real
dispatcher, to a webhook receiver of ours on loopback: filed with its outbox row in the same
transaction (no alarm, never the resident's phone), delivered once to the firm's duty staff on
shift (once across a dispatcher that died after the send), rendered with the entry, community,
place, response deadline and duty page in both languages, and escalated to the next party only
while nobody took the work order on.

The shipped list refuses escalation steps on complaint entries (responsibility/model.py,
``shape_problems``), so the escalation tests give ``CP.REPAIR`` a step by hand: what notify and
lifecycle do once a list may carry one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.db import Conn
from core.holiday_store import calendar_in_force
from core.settings import Settings
from core.workcalendar import Unit
from lifecycle.complaints import Complaint, Filed, community, file_complaint
from lifecycle.work_orders import transition
from notify import outbox
from notify.ack_links import AckLinks
from notify.dispatcher import Dispatcher
from notify.messages import render
from notify.policy import Policy
from responsibility.loader import default_list
from responsibility.model import Entry, Escalation, Limit, Party
from tests.conftest import clear_people
from tests.notify.test_dispatch import LOCAL, Receiver
from tests.notify.test_routing import Clock, person

PHONE = "13912345678"
PAGES = "https://wy.example.org"
PLACE = "3号楼2单元 楼道灯"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def clean(db: Conn) -> tuple[int, str]:
    """No people, notifications, alarms or work orders (complaints go with them); the first
    community's (id, code)."""
    clear_people(db)
    db.execute(
        "TRUNCATE alarms, work_orders, work_order_transitions, work_order_breaches,"
        " escalation_steps CASCADE"
    )
    row = db.execute("SELECT id, code FROM communities ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def on_shift(db: Conn, community_id: int, name: str, address: str, role: str) -> int:
    now = datetime.now(UTC)
    return person(
        db,
        community_id,
        name,
        address,
        now - timedelta(hours=1),
        now + timedelta(days=1),
        role=role,
    )


def entry(*, escalate_after_min: float | None = None) -> Entry:
    e = default_list().entries["CP.REPAIR"]
    if escalate_after_min is None:
        return e
    step = Escalation(
        after=Limit(value=escalate_after_min, unit=Unit.CALENDAR_MINUTES),
        notify=Party.PROJECT_MANAGER,
    )
    return e.model_copy(update={"escalation": (step,)})


def file(db: Conn, code: str, e: Entry, at: datetime, phone: str = PHONE) -> Filed:
    where = community(db, code)
    assert where is not None
    return file_complaint(
        db,
        where,
        e,
        Complaint(e.code, PLACE, "楼道灯坏了一周了，晚上很黑", phone, None),
        client="test-client",
        list_version="t",
        calendar=calendar_in_force(db, None),
        at=at,
        per_phone_hour=100,
        per_client_hour=100,
    )


def dispatcher(settings: Settings, http: httpx.Client, clock: Clock, name: str) -> Dispatcher:
    """The dispatcher as the notify stage runs it, with the default policy (P2 grouped)."""
    return Dispatcher(
        settings.database_url,
        name,
        http,
        policy=Policy(reminder_every={}),
        clock=clock,
        housekeeping_s=0,
        backoff_base_s=0.05,
        pages_url=PAGES,
        addresses=LOCAL,
    )


def accepted(db: Conn, outbox_id: int) -> list[int]:
    """The people who accepted this outbox row, one entry per accepted delivery."""
    return [
        int(r[0])
        for r in db.execute(
            "SELECT person_id FROM deliveries WHERE outbox_id = %s AND status = 'accepted'"
            " ORDER BY person_id",
            (outbox_id,),
        )
    ]


def test_a_filed_complaint_reaches_the_duty_staff_on_shift_exactly_once(
    settings: Settings, db: Conn, receiver: Receiver, clean: tuple[int, str]
) -> None:
    community_id, code = clean
    duty = on_shift(db, community_id, "值班员 李", receiver.url + "?duty", "duty_staff")
    on_shift(db, community_id, "维保 张", receiver.url + "?unit", "maintenance_staff")
    now = datetime.now(UTC)
    person(  # off shift
        db, community_id, "下班 王", receiver.url + "?off", now - timedelta(hours=5), now
    )
    filed = file(db, code, entry(), now)

    row = db.execute(
        "SELECT id, kind, alarm_id, work_order_id, severity, responsible_party, payload FROM outbox"
    ).fetchall()
    assert len(row) == 1, "one notice, written with the work order"
    oid, kind, alarm, wo, severity, party, payload = row[0]
    assert (kind, alarm, wo, severity, party) == (
        "complaint_filed",
        None,
        filed.work_order_id,
        "P2",
        "property_firm",
    )
    stored = json.dumps(payload, ensure_ascii=False)
    assert PHONE not in stored and filed.tracking_code not in stored
    assert payload["location"] == PLACE and payload["code"] == "CP.REPAIR"

    clock = Clock()
    with httpx.Client(timeout=5) as http:
        first = dispatcher(settings, http, clock, "d-first")
        first.run_once()
        assert receiver.requests == 0, "a P2 waits for companions, as an alarm's would"
        clock.advance(seconds=31)
        first.run_once()
        first.close()
        assert accepted(db, oid) == [duty], "the duty staff on shift, nobody else"
        assert receiver.requests == 1
        # The dispatcher died after the send was logged, before the row was finished: the next
        # one takes the row again and sends nothing more.
        db.execute(
            "UPDATE outbox SET done_at = NULL, claimed_until = now() - interval '1 s'"
            " WHERE id = %s",
            (oid,),
        )
        second = dispatcher(settings, http, clock, "d-second")
        for _ in range(3):
            clock.advance(minutes=6)
            second.run_once()
        second.close()
    assert receiver.requests == 1, "exactly once across the restart"
    assert accepted(db, oid) == [duty]
    done = db.execute("SELECT done_at IS NOT NULL FROM outbox WHERE id = %s", (oid,)).fetchone()
    assert done == (True,)
    (got,) = receiver.accepted.values()
    assert got["kind"] == "complaint_filed" and got["work_order_id"] == filed.work_order_id
    assert got["page_url"] == f"{PAGES}/duty/complaints/{filed.work_order_id}"
    assert PHONE not in json.dumps(got, ensure_ascii=False)


def test_the_message_names_entry_community_place_and_due_time_and_never_the_phone(
    settings: Settings, db: Conn, receiver: Receiver, clean: tuple[int, str]
) -> None:
    community_id, code = clean
    on_shift(db, community_id, "值班员 李", receiver.url, "duty_staff")
    names = db.execute(
        "SELECT name_zh, name_en FROM communities WHERE id = %s", (community_id,)
    ).fetchone()
    assert names is not None
    # Tuesday 2026-12-01 14:00 Beijing: the 2 working hours to respond end at 16:00.
    at = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    filed = file(db, code, entry(), at)
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(
            settings.database_url,
            "d-msg",
            http,
            policy=Policy(grouped=frozenset(), reminder_every={}),
            housekeeping_s=0,
            ack=AckLinks("ack-secret", "https://duty.example.org/v1/ack"),
            addresses=LOCAL,
        )
        d.run_once()
        d.close()
    (got,) = receiver.accepted.values()
    page = f"https://duty.example.org/duty/complaints/{filed.work_order_id}"
    assert got["page_url"] == page, "the duty pages are where the ack page is"
    assert "ack_url" not in got, "signed links are for alarms only"
    zh_title, zh = render(got, "zh")
    en_title, en = render(got, "en")
    assert zh_title == "[P2] 居民投诉报修: 公共设施报修"
    assert en_title == "[P2] Resident complaint: Repair of common facilities"
    assert f"小区: {names[0]}" in zh and f"Community: {names[1]}" in en
    assert f"地点: {PLACE}" in zh and f"Place: {PLACE}" in en
    assert "时限 (响应): 2026-12-01 16:00" in zh
    assert "Due (respond): 2026-12-01 16:00" in en
    assert f"受理（需登录）: {page}" in zh and f"Take it on (sign in): {page}" in en
    for text in (zh, en, json.dumps(got, ensure_ascii=False)):
        assert PHONE not in text and filed.tracking_code not in text
        assert "晚上很黑" not in text, "the resident's text stays on the duty page"


def test_an_untaken_complaint_escalates_and_a_taken_one_does_not(
    settings: Settings, db: Conn, receiver: Receiver, clean: tuple[int, str]
) -> None:
    community_id, code = clean
    duty = on_shift(db, community_id, "值班员 李", receiver.url + "?duty", "duty_staff")
    pm = on_shift(db, community_id, "项目经理 赵", receiver.url + "?pm", "project_manager")
    now = datetime.now(UTC)
    e = entry(escalate_after_min=5)
    # Filed 10 minutes ago, each with its step due 5 minutes ago.
    untaken = file(db, code, e, now - timedelta(minutes=10), phone="13900000001")
    taken = file(db, code, e, now - timedelta(minutes=10), phone="13900000002")
    late = file(db, code, e, now - timedelta(minutes=10), phone="13900000003")
    steps = db.execute("SELECT count(*) FROM escalation_steps").fetchone()
    assert steps == (3,), "the entry's steps are scheduled with the work order"
    transition(db, taken.work_order_id, "responded", actor="值班员 李", at=now)
    # The late one's step fires; it is taken on before the escalation goes out.
    assert outbox.fire_escalations(db) == 2
    transition(db, late.work_order_id, "responded", actor="值班员 李", at=now)

    clock = Clock()
    clock.advance(seconds=31)  # the filed notices' group wait has passed
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, clock, "d-esc")
        for _ in range(3):
            d.run_once()
        d.close()
    rows = db.execute(
        "SELECT id, work_order_id, notify_party, alarm_id, superseded FROM outbox"
        " WHERE kind = 'complaint_escalation' ORDER BY work_order_id"
    ).fetchall()
    by_wo = {int(r[1]): r for r in rows}
    assert set(by_wo) == {untaken.work_order_id, late.work_order_id}, "never the taken one"
    esc = by_wo[untaken.work_order_id]
    assert esc[2] == "project_manager" and esc[3] is None and esc[4] is False
    assert accepted(db, int(esc[0])) == [pm], "the step's party only"
    assert by_wo[late.work_order_id][4] is True, "taken on before it went out: superseded"
    assert accepted(db, int(by_wo[late.work_order_id][0])) == []
    sent = [p for p in receiver.accepted.values() if p["kind"] == "complaint_escalation"]
    assert len(sent) == 1 and sent[0]["work_order_id"] == untaken.work_order_id
    assert sent[0]["location"] == PLACE and sent[0]["notify"] == "project_manager"
    assert PHONE not in json.dumps(sent[0]) and "13900000001" not in json.dumps(sent[0])
    title, _ = render(sent[0], "zh")
    assert title == "[P2] 投诉超时未受理: 公共设施报修"
    # The three filed notices (P2: one batch) reached the duty staff, once.
    filed_rows = db.execute(
        "SELECT id, batch_id, done_at IS NOT NULL FROM outbox WHERE kind = 'complaint_filed'"
        " ORDER BY id"
    ).fetchall()
    lead = int(filed_rows[0][0])
    assert [(b, done) for _, b, done in filed_rows] == [(lead, True)] * 3
    assert accepted(db, lead) == [duty]
    (group,) = [p for p in receiver.accepted.values() if p["kind"] == "group"]
    assert sorted(i["work_order_id"] for i in group["items"]) == sorted(
        f.work_order_id for f in (untaken, taken, late)
    )
    assert all(
        i["page_url"].endswith(f"/duty/complaints/{i['work_order_id']}") for i in group["items"]
    )
    title, _ = render(group, "zh")
    assert "3 条居民投诉报修" in title and "告警" not in title
    title, _ = render({**group, "items": [*group["items"], {"kind": "alarm_opened"}]}, "en")
    assert "4 alarms and complaints" in title


def test_the_database_allows_no_alarm_only_on_a_complaint_notice(
    db: Conn, clean: tuple[int, str]
) -> None:
    import psycopg

    community_id, _ = clean
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO outbox (kind, community_id, severity, payload)"
            " VALUES ('alarm_opened', %s, 'P1', '{}')",
            (community_id,),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO outbox (kind, community_id, severity, payload)"
            " VALUES ('complaint_filed', %s, 'P2', '{}')",
            (community_id,),
        )


def test_the_api_may_file_and_notify_may_deliver_under_their_own_roles(
    db: Conn, clean: tuple[int, str]
) -> None:
    _, code = clean
    with db.transaction():
        db.execute("SET LOCAL ROLE shouwang_api")
        filed = file(db, code, entry(escalate_after_min=1), datetime.now(UTC) - timedelta(hours=1))
    with db.transaction():
        db.execute("SET LOCAL ROLE shouwang_notify")
        assert outbox.fire_escalations(db) == 1
        claims = outbox.claim(db, "d-roles", 30.0, [], 10)
        assert {c.kind for c in claims} == {"complaint_filed", "complaint_escalation"}
        assert all(c.alarm_id is None and c.work_order_id == filed.work_order_id for c in claims)
        assert outbox.work_order_taken_on(db, filed.work_order_id) is False
