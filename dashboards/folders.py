"""Dashboards: every dashboard the platform ships, in one folder per audience (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dashboards import elevators, fire, operations, platform_health, regulator, water, work_orders
from dashboards.model import Dashboard
from responsibility.loader import ResponsibilityList


@dataclass(frozen=True, slots=True)
class Folder:
    uid: str
    title: str
    audience: str


FIRM: Final = Folder("shouwang-firm", "物业运营 Firm operations", "firm")
EQUIPMENT: Final = Folder("shouwang-equipment", "设施设备 Equipment", "equipment")
REGULATOR: Final = Folder("shouwang-regulator", "县级监管 Regulator", "regulator")
FOLDERS: Final = (FIRM, EQUIPMENT, REGULATOR)
AUDIENCES: Final = tuple(f.audience for f in FOLDERS)
# The platform operators' folder: dashboards over Prometheus (the platform's own health), not over
# the database, so no dashboards login role and no responsibility list; provisioned from files
# beside the others (dashboards/files.py), not published with them.
PLATFORM: Final = Folder("shouwang-platform", "平台运维 Platform operations", "platform")


@dataclass(frozen=True, slots=True)
class Placed:
    folder: Folder
    dashboard: Dashboard


def all_dashboards(lst: ResponsibilityList) -> tuple[Placed, ...]:
    """The dashboards, their thresholds and limits taken from ``lst`` (the list in force)."""
    entries = tuple(lst.entries.values())
    return (
        Placed(FIRM, operations.build(entries)),
        Placed(FIRM, work_orders.build(entries, lst.version)),
        Placed(EQUIPMENT, elevators.build(entries)),
        Placed(EQUIPMENT, fire.build(entries)),
        Placed(EQUIPMENT, water.build(entries)),
        Placed(REGULATOR, regulator.build(entries)),
    )


def platform_dashboards(stuck_after_s: float = 60.0) -> tuple[Placed, ...]:
    """The platform operators' dashboards (``stuck_after_s``: the settings'
    ``health_stuck_after_s``)."""
    return (Placed(PLATFORM, platform_health.build(stuck_after_s)),)
