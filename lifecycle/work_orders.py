"""Lifecycle: moving a work order through its states, stamped with who and when (I/O).

occurred -> responded -> on_site -> completed, or false_alarm from any open state. Analytics
files work orders; the API, the duty staff's acknowledgement and maintenance units move them
here, one way for all.
"""

from __future__ import annotations

from datetime import datetime

from core.db import Conn

# Work-order lifecycle: occurred -> responded -> on_site -> completed, or false_alarm from any
# open state. Each transition is stamped with who made it and when.
NEXT: dict[str, tuple[str, ...]] = {
    "occurred": ("responded", "on_site", "completed", "false_alarm"),
    "responded": ("on_site", "completed", "false_alarm"),
    "on_site": ("completed", "false_alarm"),
    "completed": (),
    "false_alarm": (),
}


class TransitionError(ValueError):
    pass


def filed_for(conn: Conn, alarm_ids: list[int]) -> dict[int, int]:
    """The work order filed for each of these alarms that has one: alarm id -> work order id."""
    if not alarm_ids:
        return {}
    rows = conn.execute(
        "SELECT alarm_id, id FROM work_orders WHERE alarm_id = ANY(%s)", (alarm_ids,)
    ).fetchall()
    return {int(alarm): int(wo) for alarm, wo in rows}


def transition(
    conn: Conn, work_order_id: int, to: str, *, actor: str, at: datetime, note: str = ""
) -> None:
    """Move a work order on; skipped steps are stamped at the same time (arriving on site implies
    having responded). Raises TransitionError for a move the lifecycle does not allow."""
    if not actor:
        raise TransitionError("a transition needs the actor who made it")
    with conn.transaction():
        row = conn.execute(
            "SELECT status FROM work_orders WHERE id = %s FOR UPDATE", (work_order_id,)
        ).fetchone()
        if row is None:
            raise TransitionError(f"no work order {work_order_id}")
        current = str(row[0])
        if to not in NEXT[current]:
            allowed = ", ".join(NEXT[current]) or "none: it is closed"
            raise TransitionError(
                f"work order {work_order_id} is {current}; it can go to {allowed}, not {to}"
            )
        closing = to in ("completed", "false_alarm")
        conn.execute(
            "UPDATE work_orders SET status = %(to)s,"
            " responded_at = coalesce(responded_at, CASE WHEN %(to)s <> 'false_alarm' THEN %(at)s END),"
            " on_site_at = coalesce(on_site_at, CASE WHEN %(to)s IN ('on_site', 'completed') THEN %(at)s END),"
            " closed_at = CASE WHEN %(closing)s THEN %(at)s ELSE closed_at END,"
            " closed_reason = CASE WHEN %(closing)s THEN %(to)s ELSE closed_reason END"
            " WHERE id = %(id)s",
            {"to": to, "at": at, "closing": closing, "id": work_order_id},
        )
        conn.execute(
            "INSERT INTO work_order_transitions (work_order_id, at, actor, from_status, to_status, note)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (work_order_id, at, actor, current, to, note),
        )
        if closing or to == "responded":
            conn.execute(
                "UPDATE escalation_steps SET cancelled_at = %s WHERE work_order_id = %s"
                " AND fired_at IS NULL AND cancelled_at IS NULL",
                (at, work_order_id),
            )
