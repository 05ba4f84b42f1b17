"""API: who may do what (pure), and the SQL that keeps every query inside the caller's scope.

Two separate questions, answered in this order:

1. May the caller's *role* do this at all? If not: 403, before anything is looked up, so the
   answer never depends on whether the id exists.
2. Is the record inside the caller's *scope*? Every query carries the scope in its WHERE clause;
   a record outside it is not found: 404, exactly as for an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from psycopg import sql

from api.deps import Principal
from api.errors import forbidden


class Action(StrEnum):
    READ_COMMUNITIES = "read communities, buildings, devices, telemetry and alarms"
    READ_WORK_ORDERS = "read work orders"
    WRITE_REGIONS = "change regions"
    WRITE_FIRMS = "change property firms"
    WRITE_UNITS = "change maintenance units"
    WRITE_COMMUNITIES = "create, change or delete communities"
    WRITE_DEVICES = "create, change or delete buildings and devices, or their credentials"
    ACT_ON_ALARMS = "acknowledge or clear alarms"
    ASSIGN_WORK_ORDERS = "assign work orders to maintenance units"
    MOVE_WORK_ORDERS = "move work orders through their lifecycle"
    COMMENT_WORK_ORDERS = "comment on work orders"
    PUBLISH_LIST = "publish the responsibility list"
    LOAD_CALENDAR = "load the yearly holiday schedule"
    READ_ROSTER = "read the duty roster and its people"
    WRITE_ROSTER = "change the duty roster or its people"
    READ_DELIVERIES = "read the notification delivery log"
    READ_PLATFORM = "read platform alarms and the platform operators' roster"
    ACK_PLATFORM_ALARMS = "acknowledge platform alarms"
    WRITE_PLATFORM_ROSTER = "change the platform operators' roster or its people"
    READ_AUDIT = "read the audit log"
    CONFIGURE_GATEWAYS = "read the state of the firm's site gateways and push their configs"


_SUPERVISORS: Final = frozenset(
    {
        Action.READ_COMMUNITIES,
        Action.READ_WORK_ORDERS,
        Action.COMMENT_WORK_ORDERS,
        Action.READ_ROSTER,
        Action.READ_DELIVERIES,
    }
)

PERMISSIONS: Final[dict[str, frozenset[Action]]] = {
    "county_regulator": _SUPERVISORS
    | {
        Action.WRITE_REGIONS,
        Action.WRITE_FIRMS,
        Action.WRITE_UNITS,
        Action.WRITE_COMMUNITIES,
        Action.WRITE_DEVICES,
        Action.PUBLISH_LIST,
        Action.LOAD_CALENDAR,
        Action.WRITE_ROSTER,
        Action.READ_PLATFORM,
        Action.WRITE_PLATFORM_ROSTER,
        Action.READ_AUDIT,
    },
    "township": _SUPERVISORS | {Action.WRITE_COMMUNITIES, Action.WRITE_DEVICES},
    "firm_admin": _SUPERVISORS
    | {
        Action.WRITE_FIRMS,
        Action.WRITE_DEVICES,
        Action.ACT_ON_ALARMS,
        Action.ASSIGN_WORK_ORDERS,
        Action.MOVE_WORK_ORDERS,
        Action.WRITE_ROSTER,
        Action.READ_AUDIT,  # its own firm's part (api/routes/audit.py)
        Action.CONFIGURE_GATEWAYS,  # its own sites' only (api/routes/gateways.py)
    },
    "duty_staff": _SUPERVISORS
    | {Action.ACT_ON_ALARMS, Action.ASSIGN_WORK_ORDERS, Action.MOVE_WORK_ORDERS},
    "maintenance_unit": frozenset(
        {
            Action.READ_WORK_ORDERS,
            Action.MOVE_WORK_ORDERS,
            Action.COMMENT_WORK_ORDERS,
            Action.WRITE_UNITS,
            Action.READ_ROSTER,
            Action.WRITE_ROSTER,
        }
    ),
    # The county's IT contact or the vendor's on-call: the platform's own alarms and its roster,
    # no community.
    "platform_operator": frozenset(
        {Action.READ_PLATFORM, Action.ACK_PLATFORM_ALARMS, Action.WRITE_PLATFORM_ROSTER}
    ),
}


def may(p: Principal, action: Action) -> bool:
    return action in PERMISSIONS.get(p.role, frozenset())


def require(p: Principal, action: Action, *alternatives: Action) -> None:
    """403 unless the caller may do ``action`` or one of ``alternatives``."""
    if not any(may(p, a) for a in (action, *alternatives)):
        raise forbidden(action.value)


@dataclass
class Where:
    """A WHERE clause built from fixed SQL fragments and named parameters."""

    parts: list[sql.Composable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, /, *columns: str, **params: Any) -> Where:
        """Add ``clause``; its ``{}`` are filled with ``columns`` (fixed names from the code)."""
        part = sql.SQL(clause).format(*(sql.SQL(c) for c in columns))
        self.parts.append(part)
        self.params.update(params)
        return self

    def add_if(self, value: Any, clause: str, name: str) -> Where:
        """Add ``clause`` with ``value`` as ``%(name)s`` unless ``value`` is None."""
        return self if value is None else self.add(clause, **{name: value})

    def sql(self) -> sql.Composable:
        return sql.SQL(" AND ").join(self.parts) if self.parts else sql.SQL("TRUE")


def communities(w: Where, p: Principal, column: str) -> Where:
    """Keep rows whose community (``column``) the caller sees."""
    if p.community_ids is None:
        return w
    return w.add(
        "{} = ANY(%(scope_communities)s)", column, scope_communities=sorted(p.community_ids)
    )


def work_orders(w: Where, p: Principal, alias: str = "wo") -> Where:
    """Keep work orders the caller sees: its communities', or a unit's own."""
    if p.role == "maintenance_unit":
        return w.add(
            "{}.maintenance_unit_id = %(scope_unit)s", alias, scope_unit=p.maintenance_unit_id
        )
    return communities(w, p, f"{alias}.community_id")


_SUBTREE: Final = (
    "(WITH RECURSIVE sub AS (SELECT id FROM regions WHERE id = %(scope_region)s"
    " UNION ALL SELECT x.id FROM regions x JOIN sub ON x.parent_id = sub.id) SELECT id FROM sub)"
)


def regions(w: Where, p: Principal, column: str = "r.id") -> Where:
    """Regions the caller sees: a township its subtree; firms and duty rooms the regions their
    communities lie in; the regulator all."""
    if p.community_ids is None:
        return w
    if p.role == "township":
        return w.add("{} IN " + _SUBTREE, column, scope_region=p.region_id)
    return w.add(
        "{} IN (SELECT region_id FROM communities WHERE id = ANY(%(scope_communities)s))",
        column,
        scope_communities=sorted(p.community_ids),
    )


def firms(w: Where, p: Principal, column: str = "f.id") -> Where:
    """Firms the caller sees: its own, and those running its communities."""
    if p.community_ids is None:
        return w
    return w.add(
        "({0} = %(scope_firm)s OR {0} IN"
        " (SELECT firm_id FROM communities WHERE id = ANY(%(scope_communities)s)))",
        column,
        scope_firm=p.firm_id,
        scope_communities=sorted(p.community_ids),
    )


def people(w: Where, p: Principal, alias: str = "pe") -> Where:
    """People the caller sees: the staff of the firms running its communities and of the units
    maintaining their devices, a township's supervisors, a unit its own staff, a platform
    operator the platform operators; the regulator everyone."""
    if p.community_ids is None:
        return w
    if p.role == "platform_operator":
        return w.add("{}.role = 'platform_operator'", alias)
    if p.role == "maintenance_unit":
        return w.add("{}.unit_id = %(scope_unit)s", alias, scope_unit=p.maintenance_unit_id)
    clause = (
        "({0}.firm_id = %(scope_firm)s OR {0}.firm_id IN"
        " (SELECT firm_id FROM communities WHERE id = ANY(%(scope_communities)s))"
        " OR {0}.unit_id IN (SELECT maintenance_unit_id FROM devices"
        "  WHERE community_id = ANY(%(scope_communities)s))"
    )
    params: dict[str, Any] = {
        "scope_firm": p.firm_id,
        "scope_communities": sorted(p.community_ids),
    }
    if p.role == "township":
        clause += " OR {0}.region_id IN " + _SUBTREE
        params["scope_region"] = p.region_id
    return w.add(clause + ")", alias, **params)


def people_writable(w: Where, p: Principal, alias: str = "pe") -> Where:
    """People the caller may change: a firm admin its firm's, a unit its own, a platform operator
    the platform operators; the regulator all."""
    if p.role == "county_regulator":
        return w
    if p.role == "platform_operator":
        return w.add("{}.role = 'platform_operator'", alias)
    if p.role == "maintenance_unit":
        return w.add("{}.unit_id = %(scope_unit)s", alias, scope_unit=p.maintenance_unit_id)
    return w.add("{}.firm_id = %(scope_firm)s", alias, scope_firm=p.firm_id)
