"""The responsibility list: the shipped default, every error reported with its line, overrides."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.catalogue import DeviceClass
from core.errors import ConfigError
from core.severity import Severity
from core.workcalendar import Unit
from responsibility.loader import (
    ListError,
    ListProblem,
    default_list,
    load_list,
    parse_list,
    parse_override,
)
from responsibility.model import Entry, EventCodeFiling, Party, ThresholdFiling

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")


def make_entry(
    code: str = "EL.TEST",
    *,
    device_class: str = "elevator",
    filing: str = '{detector: event_code, codes: ["11"]}',
    severity: str = "P1",
    response: str = "{value: 1, unit: calendar_minutes}",
    arrival: str = "{value: 30, unit: calendar_minutes}",
    resolution: str = "{value: 120, unit: calendar_minutes}",
    extra: str = "",
    drop: str = "",
) -> str:
    """One list item as YAML text; ``drop`` removes the line starting with that key."""
    lines = [
        f"  - code: {code}",
        "    name: {zh: 测试, en: Test}",
        f"    device_class: {device_class}",
        "    kind: event",
        "    filing:",
        f"      - {filing}",
        f"    severity: {severity}",
        "    responsible: elevator_maintenance_unit",
        "    supervisor: market_supervision",
        "    limits:",
        f"      response: {response}",
        f"      arrival: {arrival}",
        f"      resolution: {resolution}",
        "    closing: {condition: 已恢复 / Back to normal, hold_seconds: 60}",
    ]
    lines = [ln for ln in lines if not (drop and ln.strip().startswith(f"{drop}:"))]
    return "\n".join(lines) + "\n" + extra


def make_list(*entries: str, version: str = '"t1"') -> str:
    return f"version: {version}\nentries:\n" + "".join(entries)


def line_of(text: str, fragment: str, nth: int = 1) -> int:
    """1-based line of the nth line containing ``fragment``."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if fragment in ln]
    return hits[nth - 1]


def problems(text: str, source: str = "list.yaml") -> list[ListProblem]:
    with pytest.raises(ListError) as info:
        parse_list(text, source)
    return info.value.errors


def only(found: list[ListProblem]) -> ListProblem:
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# The shipped default.


def test_default_list_loads_and_covers_the_domain() -> None:
    lst = default_list()
    assert lst.version
    assert len(lst.entries) >= 45
    assert re.fullmatch(r"[0-9a-f]{64}", lst.digest)
    for e in lst.entries.values():
        assert CJK.search(e.name.zh), e.code
        assert e.name.en
    for cls in DeviceClass:
        codes = {e.code for e in lst.by_device_class(cls)}
        assert any(c.endswith(".OFFLINE") for c in codes), cls

    trapped = lst.entries["EL.TRAPPED"]
    assert trapped.severity is Severity.P0
    assert trapped.responsible is Party.ELEVATOR_MAINTENANCE_UNIT
    assert trapped.supervisor is Party.MARKET_SUPERVISION
    assert trapped.notify_regulator
    assert {f.detector for f in trapped.filing} == {"event_code", "trapped"}
    assert trapped.limits.arrival is not None
    assert (trapped.limits.arrival.value, trapped.limits.arrival.unit) == (
        30,
        Unit.CALENDAR_MINUTES,
    )
    assert [s.notify for s in trapped.escalation] == [
        Party.PROJECT_MANAGER,
        Party.PROPERTY_FIRM,
        Party.TOWNSHIP,
    ]
    assert lst.entries["EL.OVERRUN"].emergency_fund
    assert lst.entries["FP.FIRE"].severity is Severity.P0
    chlorine = lst.entries["WQ.CHLORINE"].filing[0]
    assert isinstance(chlorine, ThresholdFiling)
    assert (chlorine.below, chlorine.above) == (0.05, 2.0)


def test_default_data_quality_entries_use_working_days() -> None:
    for e in default_list().entries.values():
        if e.severity is Severity.P3:
            assert e.limits.resolution.unit is Unit.WORKING_DAYS, e.code
            assert e.work_order, e.code


def test_docs_list_every_default_entry() -> None:
    doc = (ROOT / "docs" / "responsibility-list.md").read_text(encoding="utf-8")
    missing = [c for c in default_list().entries if f"`{c}`" not in doc]
    assert not missing


def test_models_are_frozen_and_entry_checks_the_catalogue_on_its_own() -> None:
    trapped = default_list().entries["EL.TRAPPED"]
    with pytest.raises(ValidationError):
        trapped.severity = Severity.P3  # type: ignore[misc]
    data = trapped.model_dump(mode="json")
    data["filing"] = [{"detector": "threshold", "metric": "speeed", "above": 3}]
    with pytest.raises(ValidationError, match="did you mean 'speed'"):
        Entry.model_validate(data)


# Each kind of error, with its line.


def test_unknown_metric() -> None:
    text = make_list(
        make_entry(
            device_class="fire_water",
            filing="{detector: threshold, metric: sprinkler_presure, below: 0.1}",
        )
    )
    p = only(problems(text))
    assert p.line == line_of(text, "sprinkler_presure")
    assert p.path == "entries[0].filing[0].metric"
    assert "did you mean 'sprinkler_pressure'" in p.message


def test_unknown_event_code() -> None:
    text = make_list(make_entry(filing='{detector: event_code, codes: ["11", "12"]}'))
    p = only(problems(text))
    assert (p.line, p.path) == (line_of(text, '"12"'), "entries[0].filing[0].codes[1]")
    assert "unknown event code '12' for elevator" in p.message


def test_unquoted_event_code_says_to_quote_it() -> None:
    text = make_list(make_entry(filing="{detector: event_code, codes: [05]}"))
    p = only(problems(text))
    assert p.path == "entries[0].filing[0].codes[0]"
    assert "quotes" in p.message


def test_threshold_outside_physical_range() -> None:
    text = make_list(
        make_entry(
            device_class="fire_water",
            filing="{detector: threshold, metric: sprinkler_pressure, below: 5}",
        )
    )
    p = only(problems(text))
    assert (p.line, p.path) == (line_of(text, "below: 5"), "entries[0].filing[0].below")
    assert "0..4 MPa" in p.message


def test_bad_unit() -> None:
    text = make_list(make_entry(arrival="{value: 30, unit: hours}"))
    p = only(problems(text))
    assert (p.line, p.path) == (line_of(text, "unit: hours"), "entries[0].limits.arrival.unit")
    assert "calendar_minutes" in p.message


def test_missing_field_points_at_the_entry() -> None:
    text = make_list(make_entry(), make_entry("EL.OTHER", drop="supervisor"))
    p = only(problems(text))
    assert (p.line, p.path) == (line_of(text, "code: EL.OTHER"), "entries[1].supervisor")
    assert "required field 'supervisor' is missing" in p.message


def test_duplicate_code() -> None:
    text = make_list(make_entry("EL.SAME"), make_entry("EL.SAME"))
    p = only(problems(text))
    assert p.line == line_of(text, "code: EL.SAME", nth=2)
    assert f"line {line_of(text, 'code: EL.SAME')}" in p.message


def test_yaml_syntax_error() -> None:
    text = make_list(make_entry()) + "  - code: [unclosed\n"
    p = only(problems(text))
    assert p.line >= line_of(text, "[unclosed")
    assert p.message.startswith("YAML syntax")


def test_duplicate_yaml_key() -> None:
    text = make_list(make_entry(extra="    severity: P0\n"))
    p = only(problems(text))
    assert (p.line, p.path) == (line_of(text, "severity: P0"), "entries[0].severity")
    assert "appears twice" in p.message


def test_other_checks() -> None:
    text = make_list(
        make_entry("EL.A", response="{value: 60, unit: calendar_minutes}"),
        make_entry(
            "EL.B",
            extra=(
                "    escalation:\n"
                "      - {after: {value: 10, unit: calendar_minutes}, notify: township}\n"
                "      - {after: {value: 5, unit: calendar_minutes}, notify: township}\n"
                "    severity_raise: {after: {value: 1, unit: working_days}, to: P2}\n"
            ),
        ),
        make_entry("PR.A", device_class="pump_room", filing="{detector: trapped}"),
        make_entry("EL.C", filing="{detector: wobble}"),
        make_entry("el.lower"),
        make_entry("EL.D", filing="{detector: threshold, metric: speed}"),
    )
    found = {p.path: p for p in problems(text)}
    assert "must not be longer than arrival" in found["entries[0].limits"].message
    assert found["entries[1].escalation[1].after"].line == line_of(text, "value: 5, unit")
    assert "more severe" in found["entries[1].severity_raise.to"].message
    assert "only for device_class elevator" in found["entries[2].filing[0].detector"].message
    assert "unknown detector 'wobble'" in found["entries[3].filing[0].detector"].message
    assert "EL.TRAPPED" in found["entries[4].code"].message
    assert "give 'below', 'above' or both" in found["entries[5].filing[0]"].message
    assert len(found) == 7


def test_every_error_is_reported_at_once() -> None:
    text = make_list(
        make_entry("EL.A", filing="{detector: threshold, metric: speeed, above: 3}"),
        make_entry("EL.B", filing='{detector: event_code, codes: ["99"]}'),
        make_entry(
            "FW.C",
            device_class="fire_water",
            filing="{detector: threshold, metric: hydrant_pressure, below: 9}",
            arrival="{value: 30, unit: fortnights}",  # a structural error in the same entry
        ),
        make_entry("EL.D", drop="name"),
        make_entry("EL.A"),
        version="2026.1",  # unquoted: a number, not text
    )
    with pytest.raises(ListError) as info:
        parse_list(text, "county.yaml")
    err = info.value
    assert isinstance(err, ConfigError)
    paths = [p.path for p in err.errors]
    assert paths == [
        "version",
        "entries[0].filing[0].metric",
        "entries[1].filing[0].codes[0]",
        "entries[2].filing[0].below",
        "entries[2].limits.arrival.unit",
        "entries[3].name",
        "entries[4].code",
    ]
    lines = str(err).splitlines()
    assert len(lines) == len(err.errors)
    for line, p in zip(lines, err.errors, strict=True):
        assert line == f"county.yaml:{p.line}: {p.path}: {p.message}"
    assert err.errors[0].line == 1
    assert err.errors[3].line == line_of(text, "below: 9")
    assert err.errors[4].line == line_of(text, "fortnights")


def test_thousands_of_mistakes_list_the_first_hundred_and_count_the_rest() -> None:
    """A file of thousands of unknown keys (a hostile upload, or a broken export) is refused
    with the first hundred problems and the count of the rest, at the cost of a hundred: no
    spelling suggestion or line search per problem beyond those (it used to take minutes)."""
    unknown = "".join(f"    zz_{i}: 1\n" for i in range(5000))
    err = problems(make_list(make_entry("EL.A", extra=unknown)))
    assert len(err) == 101
    assert all(p.path.startswith("entries[0].zz_") for p in err[:100])
    assert err[100].message == "4900 more problem(s) not listed; fix these and check again"
    assert err[100].more == 4900
    with pytest.raises(ListError) as info:
        parse_override(
            f"scope: community:C01\nversion: o1\nentries:\n  - code: EL.A\n{unknown}", "o"
        )
    assert "5000 problem(s)" in info.value.reason
    assert len(info.value.errors) == 101 and info.value.errors[-1].more == 4900


def test_load_list_reports_the_file_and_refuses_bad_encoding(tmp_path: Path) -> None:
    good = tmp_path / "list.yaml"
    good.write_text(make_list(make_entry()), encoding="utf-8")
    assert list(load_list(good).entries) == ["EL.TEST"]
    bad = tmp_path / "gbk.yaml"
    bad.write_bytes(make_list(make_entry()).encode("gbk"))
    with pytest.raises(ListError) as info:
        load_list(bad)
    p = only(info.value.errors)
    assert (p.file, p.line) == (str(bad), line_of(make_list(make_entry()), "测试"))
    assert "UTF-8" in p.message


# Overrides.

BASE = make_list(make_entry("EL.TRAPPED"), make_entry("EL.DOOR"))
COUNTY = """\
scope: county:DEMO
version: "2026.1-demo"
entries:
  - code: EL.TRAPPED
    limits:
      arrival: {value: 20, unit: calendar_minutes}
  - code: EL.DOOR
    filing:
      - {detector: event_code, codes: ["02", "03"]}
"""
COMMUNITY = """\
scope: community:C01
entries:
  - code: EL.TRAPPED
    limits:
      arrival: {value: 15, unit: calendar_minutes}
    escalation:
      - {after: {value: 3, unit: calendar_minutes}, notify: project_manager}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def arrival(entries: Mapping[str, Entry], code: str = "EL.TRAPPED") -> float:
    limit = entries[code].limits.arrival
    assert limit is not None
    return float(limit.value)


def test_overrides_merge_county_then_community(tmp_path: Path) -> None:
    lst = load_list(
        write(tmp_path, "base.yaml", BASE),
        [write(tmp_path, "county.yaml", COUNTY), write(tmp_path, "c01.yaml", COMMUNITY)],
    )
    assert arrival(lst.entries) == 30
    assert arrival(lst.for_community("C02")) == 30
    assert arrival(lst.for_community("C02", "DEMO")) == 20
    in_c01 = lst.for_community("C01", "DEMO")
    assert arrival(in_c01) == 15
    assert arrival(lst.for_community("C01")) == 15
    trapped = in_c01["EL.TRAPPED"]
    assert trapped.limits.response == lst.entries["EL.TRAPPED"].limits.response  # deep merge
    assert [s.notify for s in trapped.escalation] == [Party.PROJECT_MANAGER]
    door = in_c01["EL.DOOR"]
    assert [f.codes for f in door.filing if isinstance(f, EventCodeFiling)] == [("02", "03")]
    assert lst.entries["EL.DOOR"].filing[0].detector == "event_code"
    assert len(lst.entries["EL.DOOR"].filing) == 1  # lists replace, the default is untouched
    assert lst.for_community("C01", "DEMO") is in_c01


def test_override_may_add_a_complete_entry() -> None:
    text = "scope: county:DEMO\nentries:\n" + make_entry("EL.LOCAL", severity="P2")
    lst = parse_list(BASE, "base.yaml").with_overrides([parse_override(text, "county.yaml")])
    assert "EL.LOCAL" not in lst.entries
    assert lst.for_community("C01", "DEMO")["EL.LOCAL"].severity is Severity.P2


def test_bad_override_is_refused_with_its_file_and_line(tmp_path: Path) -> None:
    bad = """\
scope: county:DEMO
entries:
  - code: EL.TRAPPED
    limits:
      arrival: {value: 500, unit: calendar_minutes}
    severty: P0
  - code: EL.NEW
    severity: P2
  - code: EL.DOOR
    device_class: pump_room
"""
    path = write(tmp_path, "county.yaml", bad)
    with pytest.raises(ListError) as info:
        load_list(write(tmp_path, "base.yaml", BASE), [path])
    found = {p.path: p for p in info.value.errors}
    assert all(p.file == str(path) for p in info.value.errors)
    assert found["entries[0].severty"].line == line_of(bad, "severty")
    assert "did you mean 'severity'" in found["entries[0].severty"].message
    # Shape problems are reported first; fix them and the merge is checked.
    fixed = bad.replace("    severty: P0\n", "")
    path.write_text(fixed, encoding="utf-8")
    with pytest.raises(ListError) as info:
        load_list(tmp_path / "base.yaml", [path])
    found = {p.path: p for p in info.value.errors}
    assert found["entries[0].limits"].line == line_of(fixed, "limits:")
    assert "arrival (500 calendar_minutes)" in found["entries[0].limits"].message
    assert found["entries[1].name"].line == line_of(fixed, "code: EL.NEW")
    assert "give a whole entry" in found["entries[1].name"].message
    assert found["entries[2].filing[0].codes[0]"].line == line_of(fixed, "code: EL.DOOR")


def test_override_shape_errors() -> None:
    text = "scope: township:T01\nentries:\n  - code: EL.TRAPPED\n  - code: EL.TRAPPED\n  - 5\n"
    with pytest.raises(ListError) as info:
        parse_override(text, "o.yaml")
    assert [(p.line, p.path) for p in info.value.errors] == [
        (1, "scope"),
        (4, "entries[1].code"),
        (5, "entries[2]"),
    ]


def test_community_override_must_fit_on_top_of_each_county() -> None:
    county = parse_override(
        "scope: county:DEMO\nentries:\n  - code: EL.TRAPPED\n"
        "    limits: {resolution: {value: 60, unit: calendar_minutes}}\n",
        "county.yaml",
    )
    community_text = (
        "scope: community:C01\nentries:\n  - code: EL.TRAPPED\n"
        "    limits:\n      arrival: {value: 90, unit: calendar_minutes}\n"
    )
    community = parse_override(community_text, "c01.yaml")
    base = parse_list(BASE, "base.yaml")
    assert arrival(base.with_overrides([community]).for_community("C01")) == 90
    with pytest.raises(ListError) as info:
        base.with_overrides([county, community])
    p = only(info.value.errors)
    assert (p.file, p.line) == ("c01.yaml", line_of(community_text, "limits:"))
    assert p.message.endswith("(on top of county:DEMO)")


def test_two_files_for_one_scope_are_refused() -> None:
    one = parse_override(COUNTY, "a.yaml")
    two = parse_override(COUNTY, "b.yaml")
    with pytest.raises(ListError, match=r"b.yaml:1: scope: .* also given by a.yaml"):
        parse_list(BASE, "base.yaml").with_overrides([one, two])


# Digest.


def test_digest_follows_content_not_formatting() -> None:
    base = parse_list(BASE, "base.yaml")
    reformatted = "# a comment\n" + BASE.replace(
        "{value: 30, unit: calendar_minutes}", "{unit: calendar_minutes, value: 30.0}"
    )
    assert parse_list(reformatted, "other.yaml").digest == base.digest
    changed = BASE.replace("{value: 30, unit", "{value: 25, unit", 1)
    assert parse_list(changed, "base.yaml").digest != base.digest
    assert parse_list(BASE.replace('"t1"', '"t2"'), "base.yaml").digest != base.digest
    with_county = base.with_overrides([parse_override(COUNTY, "county.yaml")])
    assert with_county.digest != base.digest
    assert base.with_overrides([]).digest == base.digest
