"""Shared: who changes the database, as its audit log records it.

The log itself is written by row triggers in the database (``core/migrations/0022_audit_log.sql``)
whatever changes the audited tables. A connection names who is acting in three session settings
(``shouwang.actor``, ``shouwang.via``, ``shouwang.token_id``) that the triggers read; this module
sets them: :func:`act_as` for a connection's whole session (the CLI's, through
``core.db.connect(..., actor=...)``), :func:`naming` for the API's requests. A connection that
names nobody is recorded as ``sql:<login role>``; its changes to alarms, work orders and platform
alarms are not recorded at all (analytics makes those all the time).

Retention: :func:`prune` deletes what is older than ``SHOUWANG_AUDIT_RETENTION_DAYS``, never
less than :data:`MIN_RETENTION_DAYS`; ingest's hourly retention pass calls it.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from core.db import Conn

# The audited tables (the migration attaches a trigger to each; tests/core/test_audit_log.py
# checks that they agree). Alarms, work orders and platform alarms: named actors only.
RESOURCES: Final = (
    "regions",
    "firms",
    "maintenance_units",
    "communities",
    "buildings",
    "gateways",
    "devices",
    "community_maintenance_units",
    "mqtt_accounts",
    "people",
    "contact_channels",
    "duty_shifts",
    "roster_patterns",  # repeating shift patterns (0034); their shifts are duty_shifts rows
    "platform_shifts",
    "api_tokens",
    "responsibility_lists",
    "holiday_schedules",
    "dash.firm_roles",
    "dash.region_roles",
    "alarms",
    "work_orders",
    "platform_alarms",
    "person_logins",
    "login_failures",
    "page_sessions",
    "work_order_arrivals",
    "work_order_handovers",
    "phone_accounts",
    "gateway_configs",  # config pushes: who pushed which (ingest's answers are not recorded)
    "maintenance_windows",
    "maintenance_window_devices",
    "notice_boards",  # the community notice board (0031): what the firm publishes
    "notice_board_fees",
    "notice_board_contacts",
    "elevator_spending",
)
NAMED_ONLY: Final = frozenset({"alarms", "work_orders", "platform_alarms", "gateway_configs"})

# Network logs are kept at least six months (Cybersecurity Law of the PRC, art. 21); the
# database's audit_log_prune refuses less.
MIN_RETENTION_DAYS: Final = 180
_MAX_NAME: Final = 300  # the triggers keep this much of a name


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes the changes on a connection: a person through the API (``via="api"``, with the
    token), or an operator at the command line (``via="cli"``)."""

    name: str
    via: Literal["api", "cli"]
    token_id: int | None = None


_NAME_SQL: Final = (
    "SELECT set_config('shouwang.actor', %s, %s), set_config('shouwang.via', %s, %s),"
    " set_config('shouwang.token_id', %s, %s)"
)
# Back to nobody: what a pooled connection is returned with.
FORGET_SQL: Final = (
    "SELECT set_config('shouwang.actor', '', false), set_config('shouwang.via', '', false),"
    " set_config('shouwang.token_id', '', false)"
)


def naming(actor: Actor, *, local: bool) -> tuple[str, tuple[str | bool, ...]]:
    """The statement and parameters that name ``actor`` on a connection: for the session, or
    (``local``) for the current transaction only."""
    token = "" if actor.token_id is None else str(actor.token_id)
    name = actor.name[:_MAX_NAME]
    return _NAME_SQL, (name, local, actor.via, local, token, local)


def act_as(conn: Conn, actor: Actor) -> None:
    """Name ``actor`` for the rest of this connection's session (committed at once, so a
    later rollback does not undo it)."""
    query, params = naming(actor, local=False)
    conn.execute(query, params)
    if not conn.autocommit:
        conn.commit()


def cli_actor() -> Actor:
    """This command line's operator: ``cli:<OS user>``, and who became it through sudo."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:  # a container's uid without a passwd entry
        user = f"uid {uid}"
    sudo = os.environ.get("SUDO_USER", "")
    via_sudo = f" (sudo from {sudo[:64]})" if sudo and sudo != user else ""
    return Actor(f"cli:{user}{via_sudo}", "cli")


def prune(conn: Conn, *, keep_days: int, max_rows: int = 50_000) -> int:
    """Delete at most ``max_rows`` of the oldest entries older than ``keep_days``; how many."""
    if keep_days < MIN_RETENTION_DAYS:
        raise ValueError(f"the audit log is kept at least {MIN_RETENTION_DAYS} days")
    row = conn.execute("SELECT audit_log_prune(%s, %s)", (keep_days, max_rows)).fetchone()
    return 0 if row is None else int(row[0])
