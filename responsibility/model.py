"""Shared: the event-responsibility list (事件部件处置权责清单), its format and its loader (pure).

For each kind of alarm the list says when it is filed (the detectors), how severe it is, who must
handle it and who supervises, the response / arrival / resolution limits, when it closes, whom to
escalate to, and whether it opens a work order, qualifies for the emergency maintenance fund or
is reported to the regulator. ``docs/responsibility-list.md`` is its prose.

The shipped default is ``responsibility/default.yaml``. A county or a single community may override
entries (``scope: county:<CODE>`` / ``community:<CODE>``); the entries in force for a community
are default ← county ← community, each merged entry validated again.

Loading checks everything, against ``core.catalogue`` too, and reports every problem at once with
its file and line (:class:`ListError`). A bad file is refused; callers keep the list in force.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.catalogue import DeviceClass, EventCode, Metric, event_codes_by_class, metrics_by_class
from core.located_yaml import (
    Document,
    Loc,
    Problem,
    ProblemsError,
    decode,
    line_of,
    path_text,
    read,
)

CODE_PATTERN: Final = r"^[A-Z][A-Z0-9_.-]{1,31}$"
SCOPE_PATTERN: Final = r"^(county|community):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Validation context key: the loader runs the catalogue checks itself, to report them with lines.
_DEFER: Final = "defer_entry_checks"


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


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


class Unit(StrEnum):
    CALENDAR_MINUTES = "calendar_minutes"
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


class Kind(StrEnum):
    EVENT = "event"  # 事件
    COMPONENT = "component"  # 部件


Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Seconds = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# Filing conditions (立案条件): one model per detector, told apart by ``detector``.


class EventCodeFiling(_Model):
    """Device-reported event codes: active=true opens the alarm, active=false clears it."""

    detector: Literal["event_code"]
    codes: tuple[Text, ...]

    @field_validator("codes")
    @classmethod
    def _some_codes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError('list at least one event code, e.g. codes: ["11"]')
        return v


class ThresholdFiling(_Model):
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


class StateFiling(_Model):
    detector: Literal["state"]
    metric: Text
    equals: Number
    for_seconds: Seconds = 0


class TrappedFiling(_Model):
    """Car stopped with a passenger inside, outside the door zone or with doors closed."""

    detector: Literal["trapped"]
    for_seconds: Seconds = 60


class DoorOpenMovingFiling(_Model):
    detector: Literal["door_open_moving"]
    for_seconds: Seconds = 0


class OverspeedFiling(_Model):
    """Speed above ``factor`` × the device's ``rated_speed`` attribute."""

    detector: Literal["overspeed"]
    factor: Annotated[StrictFloat, Field(gt=1, allow_inf_nan=False)] = 1.2


class OfflineFiling(_Model):
    """Silent longer than ``intervals`` × the device's reporting interval."""

    detector: Literal["offline"]
    intervals: Annotated[StrictFloat, Field(ge=1, allow_inf_nan=False)] = 3


class StuckFiling(_Model):
    """The same value in ``samples`` consecutive reports."""

    detector: Literal["stuck"]
    metric: Text
    samples: Annotated[StrictInt, Field(ge=2)] = 30


class JumpFiling(_Model):
    detector: Literal["jump"]
    metric: Text
    max_rate_per_s: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]


class BaselineFiling(_Model):
    """Deviation from the device's learned baseline by more than ``z`` standard deviations."""

    detector: Literal["baseline"]
    metric: Text
    z: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)] = 6
    for_seconds: Seconds = 0


class MultivariateFiling(_Model):
    """The analytics multivariate anomaly score of the device above ``score_above``."""

    detector: Literal["multivariate"]
    score_above: Number
    for_seconds: Seconds = 0


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


class Name(_Model):
    zh: Text
    en: Text


class Limit(_Model):
    value: Annotated[StrictFloat, Field(gt=0, allow_inf_nan=False)]
    unit: Unit

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


class Limits(_Model):
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


class Closing(_Model):
    condition: Text
    hold_seconds: Annotated[StrictInt, Field(ge=0)]


class Escalation(_Model):
    after: Limit
    notify: Party


class SeverityRaise(_Model):
    after: Limit
    to: Severity


class Entry(_Model):
    code: Annotated[str, Field(pattern=CODE_PATTERN)]
    name: Name
    device_class: DeviceClass
    kind: Kind
    filing: tuple[Filing, ...]
    severity: Severity
    responsible: Party
    supervisor: Party
    limits: Limits
    closing: Closing
    escalation: tuple[Escalation, ...] = ()
    severity_raise: SeverityRaise | None = None
    work_order: StrictBool = True
    emergency_fund: StrictBool = False
    notify_regulator: StrictBool = False

    @field_validator("filing")
    @classmethod
    def _some_filing(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        if not v:
            raise ValueError("add at least one filing condition")
        return v

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, dict) and info.context.get(_DEFER):
            return self
        problems = _entry_problems(self)
        if problems:
            raise ValueError("; ".join(f"{_path(loc)}: {msg}" for loc, msg in problems))
        return self


ENTRY_FIELDS: Final = frozenset(Entry.model_fields)


def _entry_problems(entry: Entry) -> list[tuple[Loc, str]]:
    """What in a structurally valid entry contradicts the catalogue or itself, by location."""
    out: list[tuple[Loc, str]] = []
    for i, f in enumerate(entry.filing):
        out += [(("filing", i, *loc), msg) for loc, msg in _filing_problems(entry.device_class, f)]
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
    if raise_ is not None and raise_.to >= entry.severity:
        out.append(
            (
                ("severity_raise", "to"),
                f"raise to a more severe level than the entry's {entry.severity}"
                " (P0 is the most severe), or remove severity_raise",
            )
        )
    return out


@cache
def _metrics() -> dict[DeviceClass, dict[str, Metric]]:
    return metrics_by_class()


@cache
def _event_codes() -> dict[DeviceClass, dict[str, EventCode]]:
    return event_codes_by_class()


def _filing_problems(cls: DeviceClass, f: Any) -> list[tuple[Loc, str]]:
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
                        f"unknown event code '{code}' for {cls}{_suggest(code, known)};"
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
                f"unknown metric '{metric_name}' for {cls}{_suggest(metric_name, names)};"
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


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _shown(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _known_fields() -> set[str]:
    models: list[type[BaseModel]] = [Entry, Name, Limit, Limits, Closing, Escalation]
    models += [SeverityRaise, ThresholdFiling, StateFiling, OverspeedFiling, OfflineFiling]
    models += [StuckFiling, JumpFiling, BaselineFiling, MultivariateFiling, EventCodeFiling]
    return {name for m in models for name in m.model_fields} | {"version", "entries", "scope"}


def _describe(err: Mapping[str, Any], loc: Loc) -> str:
    """A sentence that says what to fix, for one pydantic error."""
    typ, inp, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    last = loc[-1] if loc else ""
    match typ:
        case "missing":
            return f"required field '{last}' is missing; add it"
        case "extra_forbidden":
            return f"unknown field '{last}'{_suggest(str(last), _known_fields())}; remove it"
        case "union_tag_invalid":
            return f"unknown detector {_shown(ctx.get('tag'))}; use one of: {', '.join(DETECTORS)}"
        case "union_tag_not_found":
            return f"add 'detector:' with one of: {', '.join(DETECTORS)}"
        case "string_type" if "codes" in loc and isinstance(inp, int):
            return f'write event codes in quotes, e.g. "05" (an unquoted code is read as the number {inp})'
        case "string_type":
            return f"expected text, got {_shown(inp)}; put the value in quotes"
        case "string_pattern_mismatch" if last == "code":
            return (
                f"{_shown(inp)} is not a valid code: use 2 to 32 characters, an upper-case letter"
                " first, then upper-case letters, digits, '_', '.' or '-' (e.g. EL.TRAPPED)"
            )
        case "string_pattern_mismatch" if last == "scope":
            return f"{_shown(inp)} is not a valid scope; write county:<CODE> or community:<CODE>"
        case "string_too_short":
            return "must not be empty"
        case "enum" | "literal_error":
            return f"{_shown(inp)} is not allowed here; use one of: {ctx.get('expected', '')}"
        case "greater_than":
            return f"must be greater than {ctx['gt']}, got {_shown(inp)}"
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}, got {_shown(inp)}"
        case "float_type" | "finite_number":
            return f"expected a finite number, got {_shown(inp)}"
        case "int_type":
            return f"expected a whole number, got {_shown(inp)}"
        case "bool_type":
            return f"expected true or false, got {_shown(inp)}"
        case "model_type" | "dict_type" | "model_attributes_type":
            return f"expected a mapping ('key: value' lines) here, got {_shown(inp)}"
        case "list_type" | "tuple_type":
            return f"expected a list ('- item' lines) here, got {_shown(inp)}"
        case "too_short":
            return f"needs at least {ctx.get('min_length', 1)} item(s)"
        case "value_error":
            return str(ctx.get("error", err["msg"]))
        case _:
            return f"{err['msg']} (got {_shown(inp)})"


class ListError(ProblemsError):
    """A responsibility list or override that was refused; ``errors`` holds every problem."""

    what = "the responsibility list"


ListProblem = Problem
_Doc = Document
_path = path_text
_line = line_of


def _read_yaml(text: str, source: str) -> tuple[Document, list[Problem]]:
    return read(text, source, ListError)


def _clean_loc(loc: Sequence[str | int], typ: str) -> Loc:
    """Drop the detector tag pydantic puts in the location of a filing condition's errors."""
    out: list[str | int] = []
    for part in loc:
        if part in DETECTORS and len(out) >= 2 and out[-2] == "filing":
            continue
        out.append(part)
    if typ in ("union_tag_invalid", "union_tag_not_found"):
        out.append("detector")
    return tuple(out)


def _from_validation(
    err: ValidationError, doc: _Doc, prefix: Loc, note: str = ""
) -> list[ListProblem]:
    out = []
    for e in err.errors(include_url=False):
        loc = prefix + _clean_loc(e["loc"], e["type"])
        out.append(
            ListProblem(doc.source, _line(doc.node, loc), _path(loc), _describe(e, loc) + note)
        )
    return out


def _located(doc: _Doc, prefix: Loc, problems: Iterable[tuple[Loc, str]]) -> list[ListProblem]:
    return [
        ListProblem(doc.source, _line(doc.node, prefix + loc), _path(prefix + loc), msg)
        for loc, msg in problems
    ]


def _validate_entry(raw: Any) -> tuple[Entry | None, ValidationError | None, list[tuple[Loc, str]]]:
    """Validate one entry; on structural errors, still check the filing conditions that parse."""
    try:
        entry = Entry.model_validate(raw, context={_DEFER: True})
    except ValidationError as e:
        return None, e, _partial_problems(raw)
    return entry, None, _entry_problems(entry)


def _partial_problems(raw: Any) -> list[tuple[Loc, str]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("filing"), list):
        return []
    try:
        cls = DeviceClass(str(raw.get("device_class")))
    except ValueError:
        return []
    out: list[tuple[Loc, str]] = []
    for i, item in enumerate(raw["filing"]):
        try:
            f = _filing_adapter().validate_python(item)
        except ValidationError:
            continue
        out += [(("filing", i, *loc), msg) for loc, msg in _filing_problems(cls, f)]
    return out


@cache
def _filing_adapter() -> TypeAdapter[Filing]:
    return TypeAdapter(Filing)


class _ListHead(_Model):
    version: Text
    entries: Annotated[list[Any], Field(min_length=1)]


class _OverrideHead(_Model):
    scope: Annotated[str, Field(pattern=SCOPE_PATTERN)]
    version: Text | None = None
    entries: list[Any]


# The list and its overrides.


@dataclass(frozen=True, slots=True, eq=False)
class Override:
    """A county's or a community's changes: per code, the fields to change or a whole entry."""

    scope: str
    version: str | None
    source: str
    patches: Mapping[str, Mapping[str, Any]]
    _doc: _Doc = field(repr=False)

    @property
    def kind(self) -> Literal["county", "community"]:
        return "county" if self.scope.startswith("county:") else "community"

    @property
    def region(self) -> str:
        return self.scope.split(":", 1)[1]


@dataclass(frozen=True, slots=True, eq=False)
class ResponsibilityList:
    """The default entries, the overrides loaded with them and a digest of all of it.

    Build it with :func:`parse_list`, :func:`load_list` or :func:`default_list`.
    """

    version: str
    entries: Mapping[str, Entry]
    overrides: tuple[Override, ...]
    digest: str
    source: str
    _cache: dict[tuple[str, str | None], Mapping[str, Entry]] = field(
        default_factory=dict, repr=False
    )

    def by_device_class(self, cls: DeviceClass | str) -> list[Entry]:
        return [e for e in self.entries.values() if e.device_class == cls]

    def for_community(
        self, community_code: str, county_code: str | None = None
    ) -> Mapping[str, Entry]:
        """The entries in force for a community: default ← county override ← community override."""
        key = (community_code, county_code)
        if key not in self._cache:
            layers = [
                o for o in self.overrides if county_code and o.scope == f"county:{county_code}"
            ]
            layers += [o for o in self.overrides if o.scope == f"community:{community_code}"]
            entries, problems = _apply(self.entries, layers)
            if problems:
                raise ListError(problems)
            self._cache[key] = entries
        return self._cache[key]

    def with_overrides(self, overrides: Sequence[Override]) -> ResponsibilityList:
        """The same default entries with exactly these overrides, each checked; else ListError."""
        problems: list[ListProblem] = []
        scopes: dict[str, str] = {}
        for o in overrides:
            if o.scope in scopes:
                line = _line(o._doc.node, ("scope",))
                msg = f"scope {o.scope} is also given by {scopes[o.scope]}; keep it in one file"
                problems.append(ListProblem(o.source, line, "scope", msg))
            scopes.setdefault(o.scope, o.source)
        counties = [o for o in overrides if o.kind == "county"]
        for o in overrides:
            problems += _apply(self.entries, [o])[1]
            if o.kind == "community":
                for c in counties:
                    merged, bad = _apply(self.entries, [c])
                    if not bad:
                        problems += _apply(merged, [o], note=f" (on top of {c.scope})")[1]
        if problems:
            raise ListError(problems)
        return _build(self.version, list(self.entries.values()), tuple(overrides), self.source)


def _deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        old = out.get(k)
        out[k] = _deep_merge(old, v) if isinstance(old, dict) and isinstance(v, dict) else v
    return out


def _apply(
    base: Mapping[str, Entry], layers: Sequence[Override], note: str = ""
) -> tuple[Mapping[str, Entry], list[ListProblem]]:
    entries = dict(base)
    problems: list[ListProblem] = []
    for o in layers:
        items = o._doc.data["entries"]
        for i, raw in enumerate(items):
            code = raw["code"]
            old = entries.get(code)
            merged = _deep_merge(old.model_dump(mode="json"), raw) if old is not None else raw
            extra = (
                "" if old is not None else f" ({code} is not in the list, so give a whole entry)"
            )
            entry, err, more = _validate_entry(merged)
            prefix: Loc = ("entries", i)
            if err is not None:
                problems += _from_validation(err, o._doc, prefix, note=extra + note)
            problems += [
                ListProblem(p.file, p.line, p.path, p.message + note)
                for p in _located(o._doc, prefix, more)
            ]
            if entry is not None and not more:
                entries[code] = entry
    return MappingProxyType(entries), problems


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _build(
    version: str, entries: Sequence[Entry], overrides: tuple[Override, ...], source: str
) -> ResponsibilityList:
    content = {
        "version": version,
        "entries": sorted((e.model_dump(mode="json") for e in entries), key=lambda d: d["code"]),
        "overrides": sorted(
            (
                {"scope": o.scope, "version": o.version, "entries": _canonical(dict(o.patches))}
                for o in overrides
            ),
            key=lambda d: str(d["scope"]),
        ),
    }
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return ResponsibilityList(
        version=version,
        entries=MappingProxyType({e.code: e for e in entries}),
        overrides=overrides,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        source=source,
    )


def parse_list(text: str, source: str) -> ResponsibilityList:
    """A responsibility list from YAML text; ``source`` names it in error messages."""
    doc, problems = _read_yaml(text, source)
    try:
        head = _ListHead.model_validate(doc.data)
    except ValidationError as e:
        problems += _from_validation(e, doc, ())
        head = None
    raw_entries = doc.data.get("entries") if isinstance(doc.data, dict) else None
    entries: list[Entry] = []
    first_line: dict[str, int] = {}
    for i, raw in enumerate(raw_entries if isinstance(raw_entries, list) else []):
        entry, err, more = _validate_entry(raw)
        if err is not None:
            problems += _from_validation(err, doc, ("entries", i))
        problems += _located(doc, ("entries", i), more)
        code = raw.get("code") if isinstance(raw, dict) else None
        if isinstance(code, str):
            line = _line(doc.node, ("entries", i, "code"))
            if code in first_line:
                msg = (
                    f"code {code} is already used on line {first_line[code]}; codes must be unique"
                )
                problems.append(ListProblem(source, line, _path(("entries", i, "code")), msg))
            first_line.setdefault(code, line)
        if entry is not None and not more:
            entries.append(entry)
    if problems or head is None:
        raise ListError(problems)
    return _build(head.version, entries, (), source)


def parse_override(text: str, source: str) -> Override:
    """An override file's shape (scope, codes, known field names); merged entries are checked by
    :meth:`ResponsibilityList.with_overrides`."""
    doc, problems = _read_yaml(text, source)
    head: _OverrideHead | None = None
    try:
        head = _OverrideHead.model_validate(doc.data)
    except ValidationError as e:
        problems += _from_validation(e, doc, ())
    raw_entries = doc.data.get("entries") if isinstance(doc.data, dict) else None
    patches: dict[str, Mapping[str, Any]] = {}
    for i, raw in enumerate(raw_entries if isinstance(raw_entries, list) else []):
        at: Loc = ("entries", i)
        if not isinstance(raw, dict):
            msg = f"expected a mapping with 'code' and the fields to change, got {_shown(raw)}"
            problems.append(ListProblem(source, _line(doc.node, at), _path(at), msg))
            continue
        code = raw.get("code")
        if not isinstance(code, str) or not re.fullmatch(CODE_PATTERN, code):
            err = {"type": "missing"} if code is None else {"type": "string_pattern_mismatch"}
            loc = (*at, "code")
            msg = _describe({**err, "input": code, "msg": ""}, loc)
            problems.append(ListProblem(source, _line(doc.node, loc), _path(loc), msg))
        elif code in patches:
            loc = (*at, "code")
            msg = f"code {code} appears twice in this file; merge the two items"
            problems.append(ListProblem(source, _line(doc.node, loc), _path(loc), msg))
        else:
            patches[code] = raw
        for key in raw:
            if key not in ENTRY_FIELDS:
                loc = (*at, str(key))
                msg = _describe({"type": "extra_forbidden", "msg": ""}, loc)
                problems.append(ListProblem(source, _line(doc.node, loc), _path(loc), msg))
    if problems or head is None:
        raise ListError(problems)
    return Override(head.scope, head.version, source, MappingProxyType(patches), doc)


def _read_text(path: Path) -> str:
    return decode(path.read_bytes(), str(path), ListError)


def load_list(path: Path, overrides: Sequence[Path] = ()) -> ResponsibilityList:
    """The list at ``path`` with the override files, all checked; every problem in one ListError."""
    problems: list[ListProblem] = []
    base: ResponsibilityList | None = None
    parsed: list[Override] = []
    try:
        base = parse_list(_read_text(path), str(path))
    except ListError as e:
        problems += e.errors
    for p in overrides:
        try:
            parsed.append(parse_override(_read_text(p), str(p)))
        except ListError as e:
            problems += e.errors
    if base is not None and not problems:
        return base.with_overrides(parsed)
    raise ListError(problems)


@cache
def default_list() -> ResponsibilityList:
    """The shipped list, ``responsibility/default.yaml``."""
    text = resources.files("responsibility").joinpath("default.yaml").read_text(encoding="utf-8")
    return parse_list(text, "responsibility/default.yaml")
