"""Responsibility: reading the event-responsibility list and its overrides from YAML (pure but
for :func:`load_list` and :func:`load_overrides`, which read files).

The shipped default is ``responsibility/default.yaml``. A county or a single community may override
entries (``scope: county:<CODE>`` / ``community:<CODE>``); the entries in force for a community
are default ← county ← community, each merged entry validated again (:class:`ResponsibilityList`).

Loading checks everything, against ``core.catalogue`` too, and reports every problem at once with
its file and line (:class:`ListError`). A bad file is refused; callers keep the list in force.
Which list is in force is :mod:`responsibility.in_force`'s answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from core.catalogue import DeviceClass
from core.located_yaml import (
    MAX_PROBLEMS,
    Document,
    Loc,
    Problem,
    ProblemsError,
    decode,
    line_of,
    path_text,
    read,
)
from responsibility.model import (
    CODE_PATTERN,
    DEFER_CHECKS,
    DETECTORS,
    ENTRY_FIELDS,
    SCOPE_PATTERN,
    BaselineFiling,
    Closing,
    Entry,
    Escalation,
    EventCodeFiling,
    Filing,
    JumpFiling,
    Limit,
    Limits,
    ListModel,
    MultivariateFiling,
    Name,
    OfflineFiling,
    OverspeedFiling,
    SeverityRaise,
    StateFiling,
    StuckFiling,
    Text,
    ThresholdFiling,
    entry_problems,
    filing_problems,
    suggest,
)

SHIPPED: Final = "responsibility/default.yaml"


# Problems and the error that carries them.


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
            return f"unknown field '{last}'{suggest(str(last), _known_fields())}; remove it"
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
    errors = err.errors(include_url=False)
    for e in errors[:MAX_PROBLEMS]:  # describing suggests spellings: not for thousands
        loc = prefix + _clean_loc(e["loc"], e["type"])
        out.append(
            ListProblem(doc.source, _line(doc.node, loc), _path(loc), _describe(e, loc) + note)
        )
    if len(errors) > MAX_PROBLEMS:
        n = len(errors) - MAX_PROBLEMS
        more = f"{n} more problem(s) here not listed; fix these first"
        out.append(ListProblem(doc.source, _line(doc.node, prefix), _path(prefix), more, more=n))
    return out


def _located(doc: _Doc, prefix: Loc, problems: Iterable[tuple[Loc, str]]) -> list[ListProblem]:
    return [
        ListProblem(doc.source, _line(doc.node, prefix + loc), _path(prefix + loc), msg)
        for loc, msg in problems
    ]


def _validate_entry(raw: Any) -> tuple[Entry | None, ValidationError | None, list[tuple[Loc, str]]]:
    """Validate one entry; on structural errors, still check the filing conditions that parse."""
    try:
        entry = Entry.model_validate(raw, context={DEFER_CHECKS: True})
    except ValidationError as e:
        return None, e, _partial_problems(raw)
    return entry, None, entry_problems(entry)


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
        out += [(("filing", i, *loc), msg) for loc, msg in filing_problems(cls, f)]
    return out


@cache
def _filing_adapter() -> TypeAdapter[Filing]:
    return TypeAdapter(Filing)


class _ListHead(ListModel):
    version: Text
    entries: Annotated[list[Any], Field(min_length=1)]


class _OverrideHead(ListModel):
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
                msg = (  # a spelling suggestion for those listed, not for thousands
                    _describe({"type": "extra_forbidden", "msg": ""}, loc)
                    if len(problems) < MAX_PROBLEMS
                    else f"unknown field '{key}'; remove it"
                )
                problems.append(ListProblem(source, _line(doc.node, loc), _path(loc), msg))
    if problems or head is None:
        raise ListError(problems)
    return Override(head.scope, head.version, source, MappingProxyType(patches), doc)


def read_text(path: Path) -> str:
    """A list or override file's text (UTF-8, a byte-order mark dropped); ListError if it is
    not UTF-8, the usual OSError if it cannot be read."""
    return decode(path.read_bytes(), str(path), ListError)


def load_list(path: Path, overrides: Sequence[Path] = ()) -> ResponsibilityList:
    """The list at ``path`` with the override files, all checked; every problem in one ListError."""
    problems: list[ListProblem] = []
    base: ResponsibilityList | None = None
    parsed: list[Override] = []
    try:
        base = parse_list(read_text(path), str(path))
    except ListError as e:
        problems += e.errors
    try:
        parsed = load_overrides(overrides)
    except ListError as e:
        problems += e.errors
    if base is not None and not problems:
        return base.with_overrides(parsed)
    raise ListError(problems)


def load_overrides(paths: Sequence[Path]) -> list[Override]:
    """The override files' shapes (:func:`parse_override`); every problem of every file in one
    ListError. Check them against a list with :meth:`ResponsibilityList.with_overrides`."""
    problems: list[ListProblem] = []
    parsed: list[Override] = []
    for p in paths:
        try:
            parsed.append(parse_override(read_text(p), str(p)))
        except ListError as e:
            problems += e.errors
    if problems:
        raise ListError(problems)
    return parsed


@cache
def shipped_text() -> str:
    """The YAML of the shipped list, ``responsibility/default.yaml``."""
    return resources.files("responsibility").joinpath("default.yaml").read_text(encoding="utf-8")


@cache
def default_list() -> ResponsibilityList:
    """The shipped list, ``responsibility/default.yaml``, without overrides."""
    return parse_list(shipped_text(), SHIPPED)
