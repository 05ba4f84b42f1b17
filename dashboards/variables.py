"""Dashboards: the chained template variables every dashboard shares (pure).

township → community → building → device, each a multi-value query variable with "All". A
building value is the building's id; devices that belong to no building (pump rooms, fire panels,
water-quality probes) are under the pseudo-building ``0``, "site-wide", so that "All" buildings
keeps them. Panel SQL filters on the last variable of the chain it uses: ``community_code IN
($community)`` or ``device IN ($device)``.
"""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable

from core.catalogue import DeviceClass
from dashboards.limits import sql_list
from dashboards.model import QueryVariable

SITE_WIDE = "0"

TOWNSHIP = QueryVariable(
    "township",
    "乡镇 Township",
    "SELECT DISTINCT township_name || ' ' || township_code AS __text, township_code AS __value"
    " FROM dash.communities ORDER BY 2",
)
COMMUNITY = QueryVariable(
    "community",
    "小区 Community",
    "SELECT name || ' ' || code AS __text, code AS __value FROM dash.communities"
    " WHERE township_code IN ($township) ORDER BY code",
)
BUILDING = QueryVariable(
    "building",
    "楼幢 Building",
    f"SELECT '公共部位 site-wide' AS __text, '{SITE_WIDE}' AS __value, '' AS k"
    " UNION ALL"
    " SELECT community_code || ' ' || code || ' ' || name, id::text, community_code || code"
    " FROM dash.buildings WHERE community_code IN ($community) ORDER BY 3",
)


def device(classes: Iterable[DeviceClass]) -> QueryVariable:
    """The devices of these classes in the chosen communities and buildings."""
    return QueryVariable(
        "device",
        "设备 Device",
        "SELECT uid || ' ' || location AS __text, uid AS __value FROM dash.devices"
        f" WHERE device_class IN ({sql_list(classes)}) AND community_code IN ($community)"
        f" AND coalesce(building_id, {SITE_WIDE}) IN ($building) ORDER BY uid",
    )


def areas() -> tuple[QueryVariable, ...]:
    return (TOWNSHIP, COMMUNITY)


def equipment(classes: Iterable[DeviceClass]) -> tuple[QueryVariable, ...]:
    return (TOWNSHIP, COMMUNITY, BUILDING, device(classes))
