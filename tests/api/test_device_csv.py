"""The device CSV's row checks (pure): every problem with its row and column."""

from __future__ import annotations

from api.device_csv import Known, Problem, check, read

KNOWN = Known(
    communities={"C01": 1},
    buildings={(1, "B01"): 10},
    units={"MU-EL1": 5},
    gateways={"C01-GW": (7, 1), "C02-GW": (8, 2)},
    taken=frozenset({"OLD-1"}),
)


def run(text: str) -> tuple[list[str], list[Problem]]:
    rows, problems = read(text)
    if problems:
        return [], problems
    devices, problems = check(rows, KNOWN)
    return [d.uid for d in devices], problems


def test_good_rows_become_devices_with_their_registry_ids() -> None:
    rows, problems = read(
        "\ufeffuid,device_class,community,building,gateway,attributes\n"
        'D-1,electrical_fire,C01,B01,C01-GW,"{""ch"": 2}"\n'
    )
    assert problems == []
    (dev,), problems = check(rows, KNOWN)
    assert problems == []
    assert (dev.community_id, dev.building_id, dev.gateway_id) == (1, 10, 7)
    assert dev.attributes == {"ch": 2}
    assert dev.report_interval_s == 10


def test_every_problem_is_reported_with_row_and_column() -> None:
    uids, problems = run(
        "uid,device_class,community,gateway,report_interval_s\n"
        "OLD-1,elevator,C01,,\n"
        "D-2,elevator,C01,C02-GW,ten\n"
        "D-2,elevator,C09,,\n"
        "D-3,elevator,C01,,5\n"
    )
    assert uids == ["D-3"]  # the good row parses; the route refuses the file as a whole
    assert [(p.row, p.field) for p in problems] == [
        (2, "uid"),
        (3, "gateway"),
        (3, "report_interval_s"),
        (4, "uid"),
        (4, "community"),
    ]


def test_header_problems_and_ragged_rows() -> None:
    _, problems = run("uid,device_class\n")
    assert [(p.row, p.field) for p in problems] == [(1, "community")]
    _, problems = run("uid,device_class,community\nA,elevator,C01,extra\n")
    assert [(p.row, p.field) for p in problems] == [(2, "(row)")]
    _, problems = run("uid,device_class,community\n")
    assert [p.message for p in problems] == ["the file has a header but no devices"]
    _, problems = run("uid,device_class,community\nA,elev\x00ator,C01\n")
    assert [(p.row, p.field) for p in problems] == [(2, "(row)")]
