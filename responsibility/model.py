"""Responsibility: the event-responsibility list's entries (事件部件处置权责清单), as types (pure).

For each kind of alarm an :class:`Entry` says when it is filed (the detectors, :data:`Filing`),
how severe it is, who must handle it (:class:`Party`) and who supervises, the response / arrival /
resolution :class:`Limits` (each a :class:`Limit` in a ``core.workcalendar.Unit``), when it
closes, whom to escalate to, and whether it opens a work order, qualifies for the emergency
maintenance fund or is reported to the regulator. ``docs/responsibility-list.md`` is its prose.

The models are frozen pydantic models that refuse unknown fields. Constructing an entry also
checks it against ``core.catalogue`` (:func:`entry_problems`); the loader
(:mod:`responsibility.loader`) defers those checks to report them with their file and line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import StrEnum
from functools import cache
from typing import Annotated, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.catalogue import DeviceClass, EventCode, Metric, event_codes_by_class, metrics_by_class
from core.located_yaml import Loc, path_text
from core.severity import Severity
from core.workcalendar import Unit

CODE_PATTERN: Final = r"^[A-Z][A-Z0-9_.-]{1,31}$"
SCOPE_PATTERN: Final = r"^(county|community):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Validation context key: the loader runs the catalogue checks itself, to report them with lines.
DEFER_CHECKS: Final = "defer_entry_checks"


class Party(StrEnum):
    FIRM_DUTY_ROOM = "firm_duty_room"
    PROJECT_MANAGER = "project_manager"
    PROPERTY_FIRM = "property_firm"
    ELEVATOR_MAINTENANCE_UNIT = "elevator_maintenance_unit"
    FIRE_MAINTENANCE_UNIT = "fire_maintenance_unit"
    WATER_UTILITY = "water_utility"
    TOWNSHIP = "township"
    COUNTY_HOUSING_BUREAU = "county_housing_bureau"
    MARKET_SUPERVISION = "market_supervision"
    FIRE_RESCUE = "fire_rescue"


class Kind(StrEnum):
    EVENT = "event"  # 事件
    COMPONENT = "component"  # 部件
    COMPLAINT = "complaint"  # 投诉/报修: filed by a resident, not by a device


Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Seconds = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1)]


class ListModel(BaseModel):
    """Base of the list's models: frozen, unknown fields refused, finite numbers only."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# Filing conditions (立案条件): one model per detector, told apart by ``detector``.


class EventCodeFiling(ListModel):
    """Device-reported event codes: active=true opens the alarm, active=false clears it."""

    detector: Literal["event_code"]
    codes: tuple[Text, ...]

    @field_validator("codes")
    @classmethod
    def _some_codes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError('list at least one event code, e.g. codes: ["11"]')
        return v


class ThresholdFiling(ListModel):
    detector: Literal["threshold"]
    metric: Text
    below: Number | None = None
    above: Number | None = None
    for_seconds: Seconds = 0

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.below is None and self.above is None:
            raise ValueError("give 'below', 'above' or both")
        if self.below is not None and self.above is not None and self.below >= self.above:
            raise ValueError(
                f"'below' ({self.below:g}) must be less than 'above' ({self.above:g}): the alarm"
                " fires outside the band between them"
            )
        return self


class StateFiling(ListModel):
    detector: Literal["state"]
    metric: Text
    equals: Number
    for_seconds: Seconds = 0


class TrappedFiling(ListModel):
    """Car stopped with a passenger inside, outside the door zone or with doors closed."""

    detector: Literal["trapped"]
    for_seconds: Seconds = 60


class DoorOpenMovingFiling(ListModel):
    detector: Literal["door_open_moving"]
    for_seconds: Seconds = 0


class OverspeedFiling(ListModel):
    """Speed above ``factor`` × the device's ``rated_speed`` attribute."""

    detector: Literal["overspeed"]
    factor: Annotated[StrictFloat, Field(gt=1, allow_inf_nan=False)] = 1.2


class OfflineFiling(ListModel):
    """Silent longer than ``intervals`` × the device's reporting interval."""

    detector: Literal["offline"]
    intervals: Annotated[StrictFloat, Field(ge=1, allow_inf_nan=False)] = 3


class StuckFiling(ListModel):
    """The same value in ``samples`` consecutive reports."""

    detector: Literal["stuck"]
    metric: Text
    samples: Annotated[StrictInt, Field(ge=2)] = 30


class JumpFiling(ListModel):
    detector: Literal["jump"]
    metric: Text
    max_rate_per_s: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]


class BaselineFiling(ListModel):
    """Deviation from the device's learned baseline by more than ``z`` standard deviations."""

    detector: Literal["baseline"]
    metric: Text
    z: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)] = 6
    for_seconds: Seconds = 0


class MultivariateFiling(ListModel):
    """The analytics multivariate anomaly score of the device above ``score_above``.

    An episode opens once the score has stayed above ``score_above`` for ``confirm_seconds``
    and ends once no row has been above it for ``hold_seconds``; the condition holds while the
    episode is open (and for ``for_seconds``). ``target_false_alarms_per_device_day`` is the
    class model's false-alarm budget: analytics raises a platform alarm when the observed rate
    drifts well above it."""

    detector: Literal["multivariate"]
    score_above: Number
    for_seconds: Seconds = 0
    confirm_seconds: Seconds = 120
    hold_seconds: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)] = 900
    target_false_alarms_per_device_day: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)] = (
        0.05
    )


Filing = Annotated[
    EventCodeFiling
    | ThresholdFiling
    | StateFiling
    | TrappedFiling
    | DoorOpenMovingFiling
    | OverspeedFiling
    | OfflineFiling
    | StuckFiling
    | JumpFiling
    | BaselineFiling
    | MultivariateFiling,
    Field(discriminator="detector"),
]
DETECTORS: Final = (
    "event_code",
    "threshold",
    "state",
    "trapped",
    "door_open_moving",
    "overspeed",
    "offline",
    "stuck",
    "jump",
    "baseline",
    "multivariate",
)
ELEVATOR_ONLY: Final = frozenset({"trapped", "door_open_moving", "overspeed"})


class Name(ListModel):
    zh: Text
    en: Text


class Limit(ListModel):
    value: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]
    unit: Unit

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


class Limits(ListModel):
    response: Limit | None = None
    arrival: Limit | None = None
    resolution: Limit

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        steps = [("response", self.response), ("arrival", self.arrival)]
        steps.append(("resolution", self.resolution))
        given = [(n, lim) for n, lim in steps if lim is not None]
        for i, (a, la) in enumerate(given):
            for b, lb in given[i + 1 :]:
                if la.unit == lb.unit and la.value > lb.value:
                    raise ValueError(f"{a} ({la}) must not be longer than {b} ({lb})")
        return self


class Closing(ListModel):
    condition: Text
    hold_seconds: Annotated[StrictInt, Field(ge=0)]


class Escalation(ListModel):
    after: Limit
    notify: Party


class SeverityRaise(ListModel):
    after: Limit
    to: Severity


class Entry(ListModel):
    code: Annotated[str, Field(pattern=CODE_PATTERN)]
    name: Name
    device_class: DeviceClass | None = None
    kind: Kind
    filing: tuple[Filing, ...] = ()
    severity: Severity
    responsible: Party
    supervisor: Party
    limits: Limits
    closing: Closing | None = None
    escalation: tuple[Escalation, ...] = ()
    severity_raise: SeverityRaise | None = None
    work_order: StrictBool = True
    emergency_fund: StrictBool = False
    notify_regulator: StrictBool = False

    @property
    def is_complaint(self) -> bool:
        """Filed by a resident (the notice board's complaint form), not by a device."""
        return self.kind is Kind.COMPLAINT

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, dict) and info.context.get(DEFER_CHECKS):
            return self
        problems = entry_problems(self)
        if problems:
            raise ValueError("; ".join(f"{path_text(loc)}: {msg}" for loc, msg in problems))
        return self


ENTRY_FIELDS: Final = frozenset(Entry.model_fields)


def entry_problems(entry: Entry) -> list[tuple[Loc, str]]:
    """What in a structurally valid entry contradicts the catalogue or itself, by location."""
    out = shape_problems(entry)
    if entry.device_class is not None:
        for i, f in enumerate(entry.filing):
            problems = filing_problems(entry.device_class, f)
            out += [(("filing", i, *loc), msg) for loc, msg in problems]
    by_unit: dict[Unit, Limit] = {}
    for i, esc in enumerate(entry.escalation):
        prev = by_unit.get(esc.after.unit)
        if prev is not None and esc.after.value <= prev.value:
            out.append(
                (
                    ("escalation", i, "after"),
                    f"escalation steps must come later and later: {esc.after} is not after"
                    f" the earlier step's {prev}",
                )
            )
        by_unit[esc.after.unit] = esc.after
    raise_ = entry.severity_raise
    if raise_ is not None and not raise_.to.more_severe_than(entry.severity):
        out.append(
            (
                ("severity_raise", "to"),
                f"raise to a more severe level than the entry's {entry.severity}"
                " (P0 is the most severe), or remove severity_raise",
            )
        )
    return out


def shape_problems(entry: Entry) -> list[tuple[Loc, str]]:
    """What a device entry lacks, or a complaint entry has that it must not (pure)."""
    out: list[tuple[Loc, str]] = []
    if entry.is_complaint:
        why = "a complaint entry is filed by a resident, not by a device"
        if entry.device_class is not None:
            out.append((("device_class",), f"{why}: remove device_class"))
        if entry.filing:
            out.append((("filing",), f"{why}: remove filing"))
        if entry.closing is not None:
            out.append((("closing",), f"{why} and is closed by hand: remove closing"))
        if entry.severity_raise is not None:
            out.append((("severity_raise",), f"{why}: remove severity_raise"))
        if not entry.work_order:
            out.append((("work_order",), "every complaint opens a work order: remove work_order"))
        return out
    kinds = "event or component"
    if entry.device_class is None:
        msg = f"an {kinds} entry needs a device_class (or write kind: complaint)"
        out.append((("device_class",), msg))
    if not entry.filing:
        out.append((("filing",), "add at least one filing condition"))
    if entry.closing is None:
        out.append((("closing",), "add closing: {condition: …, hold_seconds: …}"))
    return out


@cache
def _metrics() -> dict[DeviceClass, dict[str, Metric]]:
    return metrics_by_class()


@cache
def _event_codes() -> dict[DeviceClass, dict[str, EventCode]]:
    return event_codes_by_class()


def filing_problems(cls: DeviceClass, f: Filing) -> list[tuple[Loc, str]]:
    """What in one filing condition contradicts the catalogue for ``cls``, by location."""
    out: list[tuple[Loc, str]] = []
    if f.detector in ELEVATOR_ONLY and cls is not DeviceClass.ELEVATOR:
        out.append((("detector",), f"detector '{f.detector}' works only for device_class elevator"))
    if isinstance(f, EventCodeFiling):
        known = _event_codes()[cls]
        for k, code in enumerate(f.codes):
            if code not in known:
                choices = ", ".join(known) or "none"
                out.append(
                    (
                        ("codes", k),
                        f"unknown event code '{code}' for {cls}{suggest(code, known)};"
                        f" codes of {cls}: {choices}",
                    )
                )
        return out
    metric_name = getattr(f, "metric", None)
    if metric_name is None:
        return out
    metric = _metrics()[cls].get(metric_name)
    if metric is None:
        names = _metrics()[cls]
        out.append(
            (
                ("metric",),
                f"unknown metric '{metric_name}' for {cls}{suggest(metric_name, names)};"
                f" metrics of {cls}: {', '.join(names)}",
            )
        )
        return out
    for attr in ("below", "above", "equals"):
        value = getattr(f, attr, None)
        if value is not None and not metric.lo <= value <= metric.hi:
            unit = f" {metric.unit}" if metric.unit else ""
            out.append(
                (
                    (attr,),
                    f"{value:g} is outside the physical range of {metric.name}"
                    f" ({metric.lo:g}..{metric.hi:g}{unit}); use a value within it",
                )
            )
    return out


# Problems and the error that carries them.


def suggest(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known word closest to ``word``, or nothing."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""
