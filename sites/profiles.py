"""Gateway: device profiles, the register maps of field-device models, as YAML data (pure).

A profile names a model's device class and every point the gateway reads from it. Adding a model
is adding a file: the shipped ones are in ``sites/profiles/``, and a site config may name a
folder of its own. A profile is checked on load against the metric catalogue
(``core/catalogue.py``), every problem reported at once as ``file:line: path: what to fix``::

    model: pump-room-controller
    device_class: pump_room
    max_registers_per_read: 60      # what the device allows in one request (default 125)
    max_gap: 0                      # unused registers a request may span to save a round trip
    points:
      - {name: tank_level, function: input, address: 0, type: uint16, scale: 0.01,
         metric: tank_level}
      - name: pump1_fault
        function: discrete_inputs   # coils | discrete_inputs | holding | input
        address: 1
        type: bool                  # bool (coils, discrete inputs), int16, uint16, int32,
                                    # uint32, float32, float64 (registers)
        metric: pump1_fault
        event: {code: PUMP_FAULT, active: [1]}

Registers also take ``byte_order`` and ``word_order`` (``big`` or ``little``; default ``big``),
``scale`` and ``offset`` (value = raw * scale + offset) and, for a bit field of a 16-bit register,
``bit`` (0 = least significant) and ``width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from core.catalogue import DeviceClass, event_codes_by_class, metrics_by_class
from core.located_yaml import Document, Loc, Problem, ProblemsError, located
from sites.converter import (
    ADDRESS_SPACE,
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    DataType,
    EventRule,
    Function,
    Point,
    Read,
    plan_reads,
)
from sites.documents import parse_document, read_document

MAX_PROFILE_BYTES: Final = 1024 * 1024
MAX_POINTS: Final = 2000
NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ProfileError(ProblemsError):
    what = "the device profile"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Event(_Strict):
    code: Annotated[str, Field(min_length=1, max_length=32)]
    active: Annotated[list[StrictInt], Field(min_length=1, max_length=64)] = [1]


class _Point(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    function: Function
    address: Annotated[StrictInt, Field(ge=0, lt=ADDRESS_SPACE)]
    type: DataType
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float | int = 1.0
    offset: float | int = 0.0
    bit: Annotated[int, Field(ge=0, le=15)] | None = None
    width: Annotated[int, Field(ge=1, le=16)] = 1
    metric: str | None = None
    event: _Event | None = None


class _Profile(_Strict):
    model: Annotated[str, Field(pattern=NAME_PATTERN)]
    device_class: DeviceClass
    description: str = ""
    max_registers_per_read: Annotated[int, Field(ge=1, le=MAX_REGISTERS_PER_READ)] = (
        MAX_REGISTERS_PER_READ
    )
    max_bits_per_read: Annotated[int, Field(ge=1, le=MAX_BITS_PER_READ)] = MAX_BITS_PER_READ
    max_gap: Annotated[int, Field(ge=0, le=MAX_REGISTERS_PER_READ)] = 0
    points: Annotated[list[_Point], Field(min_length=1, max_length=MAX_POINTS)]


@dataclass(frozen=True, slots=True)
class Profile:
    model: str
    device_class: DeviceClass
    points: tuple[Point, ...]
    reads: tuple[Read, ...]  # the plan: as few requests as the device allows
    source: str


def _check(doc: Document, raw: _Profile) -> tuple[list[Problem], tuple[Point, ...]]:
    """The profile's sense, beyond its shape: metrics and codes of its class, types that fit
    their table, one point per metric."""
    problems: list[Problem] = []
    metrics = metrics_by_class()[raw.device_class]
    codes = event_codes_by_class()[raw.device_class]
    names: dict[str, int] = {}
    fed: dict[str, int] = {}
    points: list[Point] = []

    def bad(i: int, key: str | None, msg: str) -> None:
        loc: Loc = ("points", i) if key is None else ("points", i, key)
        problems.append(located(doc, loc, msg))

    for i, p in enumerate(raw.points):
        if p.name in names:
            bad(i, "name", f"point {p.name!r} is already defined (points[{names[p.name]}])")
        names.setdefault(p.name, i)
        if p.metric is None and p.event is None:
            bad(i, None, "a point feeds a 'metric', an 'event', or both; give one")
        if p.metric is not None:
            if p.metric not in metrics:
                known = ", ".join(sorted(metrics))
                bad(i, "metric", f"{raw.device_class} has no metric {p.metric!r}; it has {known}")
            elif p.metric in fed:
                bad(i, "metric", f"metric {p.metric!r} is already fed by points[{fed[p.metric]}]")
            fed.setdefault(p.metric, i)
        if p.event is not None and p.event.code not in codes:
            known = ", ".join(sorted(codes)) or "none"
            bad(
                i,
                "event",
                f"{raw.device_class} has no event code {p.event.code!r} (it has {known})",
            )
        if p.function.bits != (p.type is DataType.BOOL):
            want = "bool" if p.function.bits else "a register type (int16 … float64), not bool"
            bad(i, "type", f"a point of {p.function} is {want}")
        if p.bit is not None and p.type not in (DataType.INT16, DataType.UINT16):
            bad(i, "bit", "a bit field is taken from an int16 or uint16 register")
        if p.bit is not None and p.bit + p.width > 16:
            bad(i, "width", f"bits {p.bit} to {p.bit + p.width - 1} do not fit in 16 bits")
        if p.event is not None and p.type in (DataType.FLOAT32, DataType.FLOAT64):
            bad(i, "event", "an event is raised by a discrete value: use a bool, integer or bit")
        if p.address + p.type.words > ADDRESS_SPACE:
            bad(i, "address", f"{p.type} at {p.address} runs past the last address 65535")
        if not (math.isfinite(p.scale) and p.scale != 0 and math.isfinite(p.offset)):
            bad(i, "scale", "scale is a finite number other than 0 and offset a finite number")
        points.append(
            Point(
                name=p.name,
                function=p.function,
                address=p.address,
                data_type=p.type,
                byte_order=p.byte_order,
                word_order=p.word_order,
                scale=float(p.scale),
                offset=float(p.offset),
                bit=p.bit,
                width=p.width,
                metric=p.metric,
                event=None
                if p.event is None
                else EventRule(p.event.code, frozenset(p.event.active)),
            )
        )
    return problems, tuple(points)


def parse_profile(data: bytes, source: str) -> Profile:
    """A profile from the bytes of its file; :class:`ProfileError` lists every problem."""
    doc, raw, problems = parse_document(
        data, source, _Profile, ProfileError, max_bytes=MAX_PROFILE_BYTES, what="a profile"
    )
    more, points = _check(doc, raw)
    problems += more
    if problems:
        raise ProfileError(problems)
    reads = plan_reads(
        points,
        max_registers=raw.max_registers_per_read,
        max_bits=raw.max_bits_per_read,
        max_gap=raw.max_gap,
    )
    return Profile(raw.model, raw.device_class, points, tuple(reads), source)


def load_profile(path: Path) -> Profile:
    profile = parse_profile(read_document(path, ProfileError), str(path))
    if profile.model != path.stem:
        raise ProfileError(
            [
                Problem(
                    str(path),
                    1,
                    "model",
                    f"the model {profile.model!r} is not the file's name {path.stem!r}; name the file {profile.model}.yaml",
                )
            ]
        )
    return profile


def shipped_profiles() -> dict[str, Profile]:
    """The profiles that come with the gateway, by model."""
    out = {}
    for item in resources.files("sites").joinpath("profiles").iterdir():
        if item.name.endswith(".yaml"):
            profile = parse_profile(item.read_bytes(), f"sites/profiles/{item.name}")
            out[profile.model] = profile
    return out


def load_profiles(folder: Path | None) -> dict[str, Profile]:
    """The shipped profiles, and those of ``folder`` (which may replace a shipped model)."""
    out = shipped_profiles()
    if folder is not None:
        problems: list[Problem] = []
        for path in sorted(folder.glob("*.yaml")):
            try:
                out[path.stem] = load_profile(path)
            except ProfileError as e:
                problems += e.errors
        if problems:
            raise ProfileError(problems)
    return out
