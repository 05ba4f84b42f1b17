"""API: a CSV of devices to register, checked row by row against the registry (pure).

The registry facts a check needs (:class:`Known`) are loaded by the caller; :func:`check`
returns the devices, or every problem with its row (the file's line: the header is line 1) and
column. An import with any problem imports nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from core.catalogue import DeviceClass
from core.namespaces import uid_problem

COLUMNS: Final = (
    "uid",
    "device_class",
    "community",
    "building",
    "location",
    "model",
    "maintenance_unit",
    "gateway",
    "install_date",
    "report_interval_s",
    "attributes",
)
REQUIRED: Final = ("uid", "device_class", "community")
MAX_ROWS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Known:
    """What the registry holds, as far as the caller may see it."""

    communities: Mapping[str, int]  # code -> id, the caller's only
    buildings: Mapping[tuple[int, str], int]  # (community id, code) -> id
    units: Mapping[str, int]  # code -> id
    gateways: Mapping[str, tuple[int, int]]  # uid -> (id, community id)
    taken: frozenset[str]  # device uids already registered


@dataclass(frozen=True, slots=True)
class NewDevice:
    uid: str
    device_class: str
    community_id: int
    building_id: int | None
    location: str
    model: str
    maintenance_unit_id: int | None
    gateway_id: int | None
    install_date: date | None
    report_interval_s: int
    attributes: dict[str, Any] = field(default_factory=dict)


def read(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """The rows with their line numbers, and problems with the header or the row count."""
    if "\x00" in text:
        return [], [Problem(text[: text.index("\x00")].count("\n") + 1, "(row)", "NUL byte")]
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    problems = [
        Problem(1, h or f"column {i + 1}", f"unknown column; use: {', '.join(COLUMNS)}")
        for i, h in enumerate(header)
        if h not in COLUMNS
    ]
    problems += [Problem(1, c, "required column is missing") for c in REQUIRED if c not in header]
    problems += [Problem(1, h, "column given twice") for h in set(header) if header.count(h) > 1]
    if problems:
        return [], problems
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                problems.append(Problem(line, "(row)", "more values than columns"))
                continue
            rows.append((line, {k: (v or "").strip() for k, v in raw.items()}))
            if len(rows) > MAX_ROWS:
                return [], [Problem(line, "(file)", f"at most {MAX_ROWS} devices per import")]
    except csv.Error as e:
        problems.append(Problem(reader.line_num, "(row)", f"not valid CSV: {e}"))
    if not rows and not problems:
        problems.append(Problem(2, "(file)", "the file has a header but no devices"))
    return rows, problems


Bad = Callable[[str, str], None]


def _uid(r: dict[str, str], line: int, known: Known, seen: dict[str, int], bad: Bad) -> str:
    uid = r.get("uid", "")
    if (problem := uid_problem(uid)) is not None:
        bad("uid", problem)
    elif uid in seen:
        bad("uid", f"also on row {seen[uid]}")
    elif uid in known.taken:
        bad("uid", "a device with this uid is already registered")
    seen.setdefault(uid, line)
    return uid


def _refs(
    r: dict[str, str], known: Known, bad: Bad
) -> tuple[int | None, int | None, int | None, int | None]:
    """(community, building, maintenance unit, gateway) ids from the row's codes."""
    community_id = known.communities.get(r.get("community", ""))
    if community_id is None:
        bad("community", "no community with this code in your scope")
    building_id = None
    if b := r.get("building"):
        building_id = known.buildings.get((community_id or 0, b))
        if building_id is None and community_id is not None:
            bad("building", "no building with this code in the community")
    unit_id = None
    if u := r.get("maintenance_unit"):
        unit_id = known.units.get(u)
        if unit_id is None:
            bad("maintenance_unit", "no maintenance unit with this code")
    gateway_id = None
    if g := r.get("gateway"):
        gw = known.gateways.get(g)
        if gw is None or (community_id is not None and gw[1] != community_id):
            bad("gateway", "no gateway with this uid in the community")
        else:
            gateway_id = gw[0]
    return community_id, building_id, unit_id, gateway_id


def _values(r: dict[str, str], bad: Bad) -> tuple[date | None, int, dict[str, Any]]:
    """(install date, report interval, attributes) from the row's text."""
    installed = None
    if d := r.get("install_date"):
        try:
            installed = date.fromisoformat(d)
        except ValueError:
            bad("install_date", "a date as YYYY-MM-DD")
    interval = 10
    if i := r.get("report_interval_s"):
        if not i.isdigit() or not 1 <= int(i) <= 86_400:
            bad("report_interval_s", "whole seconds from 1 to 86400")
        else:
            interval = int(i)
    attributes: dict[str, Any] = {}
    if a := r.get("attributes"):
        try:
            parsed = json.loads(a)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            bad("attributes", 'a JSON object, e.g. {"rated_speed": 1.75}')
        else:
            attributes = parsed
    for column in ("location", "model"):
        if len(r.get(column, "")) > 200:
            bad(column, "at most 200 characters")
    return installed, interval, attributes


def _row(
    line: int, r: dict[str, str], known: Known, seen: dict[str, int]
) -> NewDevice | list[Problem]:
    out: list[Problem] = []

    def bad(column: str, message: str) -> None:
        out.append(Problem(line, column, message))

    uid = _uid(r, line, known, seen, bad)
    cls = r.get("device_class", "")
    if cls not in {c.value for c in DeviceClass}:
        bad("device_class", f"use one of: {', '.join(c.value for c in DeviceClass)}")
    community_id, building_id, unit_id, gateway_id = _refs(r, known, bad)
    installed, interval, attributes = _values(r, bad)
    if out or community_id is None:
        return out
    return NewDevice(
        uid=uid,
        device_class=cls,
        community_id=community_id,
        building_id=building_id,
        location=r.get("location", ""),
        model=r.get("model", ""),
        maintenance_unit_id=unit_id,
        gateway_id=gateway_id,
        install_date=installed,
        report_interval_s=interval,
        attributes=attributes,
    )


def check(
    rows: list[tuple[int, dict[str, str]]], known: Known
) -> tuple[list[NewDevice], list[Problem]]:
    devices: list[NewDevice] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for line, r in rows:
        result = _row(line, r, known, seen)
        if isinstance(result, NewDevice):
            devices.append(result)
        else:
            problems += result
    return devices, problems
