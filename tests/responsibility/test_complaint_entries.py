"""Complaint entries of the responsibility list (``kind: complaint``): no device class, no filing
condition, their own limits; each mistake reported with its file and line."""

from __future__ import annotations

import pytest

from core.workcalendar import Unit
from responsibility.loader import ListError, ListProblem, default_list, parse_list
from tests.responsibility.test_model import line_of, make_entry, make_list, only


def complaint(code: str = "CP.TEST", extra: str = "") -> str:
    return (
        f"  - code: {code}\n"
        "    name: {zh: 测试投诉, en: Test complaint}\n"
        "    kind: complaint\n"
        "    severity: P2\n"
        "    responsible: property_firm\n"
        "    supervisor: township\n"
        "    limits:\n"
        "      response: {value: 2, unit: working_hours}\n"
        "      resolution: {value: 3, unit: working_days}\n" + extra
    )


def problems(text: str) -> list[ListProblem]:
    with pytest.raises(ListError) as info:
        parse_list(text, "list.yaml")
    return info.value.errors


def test_a_complaint_entry_needs_no_device_class_filing_or_closing() -> None:
    lst = parse_list(make_list(make_entry(), complaint()), "list.yaml")
    e = lst.entries["CP.TEST"]
    assert e.is_complaint and e.device_class is None and e.filing == () and e.closing is None
    assert e.limits.resolution.unit is Unit.WORKING_DAYS
    assert not lst.entries["EL.TEST"].is_complaint


def test_a_complaint_entry_may_escalate_when_not_taken_on() -> None:
    extra = "    escalation:\n      - {after: {value: 1, unit: working_days}, notify: township}\n"
    lst = parse_list(make_list(complaint(extra=extra)), "list.yaml")
    (step,) = lst.entries["CP.TEST"].escalation
    assert step.after.unit is Unit.WORKING_DAYS and str(step.notify) == "township"


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ("    device_class: elevator\n", "device_class", "remove device_class"),
        ('    filing:\n      - {detector: event_code, codes: ["11"]}\n', "filing", "remove filing"),
        ("    closing: {condition: 好了 / Done, hold_seconds: 0}\n", "closing", "remove closing"),
        ("    work_order: false\n", "work_order", "every complaint opens a work order"),
    ],
)
def test_what_a_complaint_entry_must_not_have(extra: str, field: str, says: str) -> None:
    text = make_list(complaint(extra=extra))
    p = only(problems(text))
    assert p.path == f"entries[0].{field}"
    assert p.line == line_of(text, f"{field}:")
    assert says in p.message
    assert "list.yaml" in str(p)


@pytest.mark.parametrize(
    ("drop", "says"),
    [
        ("device_class", "needs a device_class (or write kind: complaint)"),
        ("closing", "add closing"),
    ],
)
def test_a_device_entry_still_needs_its_device_fields(drop: str, says: str) -> None:
    text = make_list(make_entry(drop=drop))
    p = only(problems(text))
    assert p.path == f"entries[0].{drop}"
    assert p.line == line_of(text, "code: EL.TEST")
    assert says in p.message


def test_a_device_entry_without_filing_conditions() -> None:
    text = make_list(make_entry().replace('      - {detector: event_code, codes: ["11"]}\n', ""))
    text = text.replace("    filing:\n", "    filing: []\n")
    p = only(problems(text))
    assert (p.path, p.line) == ("entries[0].filing", line_of(text, "filing:"))
    assert "add at least one filing condition" in p.message


def test_the_shipped_list_has_complaint_entries_with_their_own_limits() -> None:
    entries = {c: e for c, e in default_list().entries.items() if e.is_complaint}
    assert set(entries) == {
        "CP.REPAIR",
        "CP.WATER",
        "CP.ELEVATOR",
        "CP.SANITATION",
        "CP.NOISE",
        "CP.SERVICE",
    }
    for e in entries.values():
        assert e.device_class is None and not e.filing and e.work_order, e.code
        assert e.limits.response is not None, e.code
        assert e.limits.resolution.unit in (Unit.WORKING_HOURS, Unit.WORKING_DAYS), e.code
    assert default_list().by_device_class("elevator")  # device entries unaffected
    assert not [e for e in default_list().by_device_class("elevator") if e.is_complaint]
