"""Acknowledgement stops escalation and records who and when, by call or single-use link."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.db import Conn
from core.settings import Settings
from lifecycle.acknowledge import AckError, acknowledge, make_token, read_token
from tests.analytics.test_work_orders import FRIDAY_EVENING, open_alarm

SECRET = "ack-secret"


def test_link_is_signed_expiring_and_single_use(settings: Settings, db: Conn) -> None:
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions,"
        " work_order_breaches, escalation_steps CASCADE"
    )
    wo = open_alarm(settings, db, "EL.TRAPPED", "elevator")
    (alarm_id,) = db.execute(
        "SELECT alarm_id FROM work_orders WHERE id = %s", (wo,)
    ).fetchone() or (0,)
    now = FRIDAY_EVENING.timestamp()
    token = make_token(SECRET, alarm_id, "值班员 李", int(now + 900))
    with pytest.raises(AckError, match="not valid"):
        read_token("other-secret", token, now=now)
    with pytest.raises(AckError, match="expired"):
        read_token(SECRET, token, now=now + 901)
    t = read_token(SECRET, token, now=now + 60)
    assert (t.alarm_id, t.person) == (alarm_id, "值班员 李")
    at = FRIDAY_EVENING + timedelta(seconds=40)
    acknowledge(db, t.alarm_id, actor=t.person, at=at, token_id=t.token_id)
    with pytest.raises(AckError, match="already used"):
        acknowledge(db, t.alarm_id, actor=t.person, at=at, token_id=t.token_id)

    alarm = db.execute(
        "SELECT state, acknowledged_by FROM alarms WHERE id = %s", (alarm_id,)
    ).fetchone()
    assert alarm == ("acknowledged", "值班员 李")
    order = db.execute(
        "SELECT status, responded_at FROM work_orders WHERE id = %s", (wo,)
    ).fetchone()
    assert order is not None and order[0] == "responded" and order[1] == at
    pending = db.execute(
        "SELECT count(*) FROM escalation_steps WHERE work_order_id = %s AND fired_at IS NULL"
        " AND cancelled_at IS NULL",
        (wo,),
    ).fetchone()
    assert pending == (0,), "acknowledging stops the escalation"
