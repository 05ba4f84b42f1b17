"""Simulators: the demo county's maintenance history, generated deterministically (pure).

Elevators get their half-monthly service (半月保) every 15 days, as the rules require, with its
cost; about one lift in 25 has missed its latest service and is overdue. Each lift also has its
statutory annual inspection, and about one in nine a paid repair. Fire panels and fire-water
terminals get a monthly service, without a recorded cost. The schedule sits on a fixed grid of
local (UTC+8) days, so generating it again later adds only the visits that fell due since.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from core.catalogue import DeviceClass
from core.workcalendar import SHANGHAI
from simulators.county import County, Device

ELEVATOR_SERVICE_DAYS = 15  # half-monthly service; overdue after 15 days (domain §2)
FIRE_SERVICE_DAYS = 30
HISTORY_DAYS = 180
FIRE_CLASSES = (DeviceClass.FIRE_PANEL, DeviceClass.FIRE_WATER)


@dataclass(frozen=True, slots=True)
class Visit:
    device_uid: str
    unit: str
    kind: str
    performed_at: datetime
    cost_cny: Decimal | None


def _key(text: str) -> int:
    return zlib.crc32(text.encode())


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=SHANGHAI)


def _grid(days: list[date], period: int, offset: int) -> list[date]:
    return [d for d in days if (d.toordinal() + offset) % period == 0]


def _elevator(d: Device, days: list[date], now: datetime) -> Iterator[Visit]:
    assert d.maintenance_unit is not None
    k = _key(d.uid)
    hour = 9 + k % 8
    service = [day for day in _grid(days, ELEVATOR_SERVICE_DAYS, k) if _at(day, hour) <= now]
    if k % 25 == 0:
        service = service[:-1]  # missed its latest service: overdue
    cost = Decimal(180 + 20 * (k % 8))
    for day in service:
        yield Visit(d.uid, d.maintenance_unit, "routine", _at(day, hour), cost)
    for day in _grid(days, 365, k):
        if _at(day, 10) <= now:
            yield Visit(d.uid, d.maintenance_unit, "annual_inspection", _at(day, 10), Decimal(400))
    if k % 9 == 0:
        day = days[-1] - timedelta(days=40 + k % 30)
        if day >= days[0]:
            yield Visit(d.uid, d.maintenance_unit, "repair", _at(day, 14), Decimal(1500))


def _fire(d: Device, community: str, days: list[date], now: datetime) -> Iterator[Visit]:
    assert d.maintenance_unit is not None
    for day in _grid(days, FIRE_SERVICE_DAYS, _key(community)):
        if _at(day, 10) <= now:
            yield Visit(d.uid, d.maintenance_unit, "routine", _at(day, 10), None)


def maintenance_history(county: County, now: datetime, days: int = HISTORY_DAYS) -> list[Visit]:
    """Every visit in the ``days`` local days up to ``now``."""
    today = now.astimezone(SHANGHAI).date()
    window = [today - timedelta(days=n) for n in range(days, -1, -1)]
    out: list[Visit] = []
    for c in county.communities:
        for d in c.devices:
            if d.maintenance_unit is None:
                continue
            if d.device_class is DeviceClass.ELEVATOR:
                out.extend(_elevator(d, window, now))
            elif d.device_class in FIRE_CLASSES:
                out.extend(_fire(d, c.code, window, now))
    return out


def contracted_units(county: County) -> list[tuple[str, str, str]]:
    """(community code, kind, unit code): the unit serving each community per kind of system."""
    kinds = {u.code: u.kind for u in county.units}
    out: dict[tuple[str, str], str] = {}
    for c in county.communities:
        for d in c.devices:
            if d.maintenance_unit is not None:
                out.setdefault((c.code, kinds[d.maintenance_unit]), d.maintenance_unit)
    return [(c, k, u) for (c, k), u in out.items()]
