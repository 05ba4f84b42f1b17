from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.roster_patterns import (
    MAX_SHIFTS,
    InvalidPattern,
    Pattern,
    Slot,
    build,
    check,
    shift_count,
    shifts,
    team_of,
)

SH = ZoneInfo("Asia/Shanghai")
EVER = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
THREE = [("早", "07:00", 480), ("中", "15:00", 480), ("夜", "23:00", 480)]


def three_shifts(**overrides: Any) -> Pattern:
    """早/中/夜 for three one-person teams (people 1, 2, 3) rotating weekly, 1-14 May 2024."""
    values: dict[str, Any] = {
        "community_id": 1,
        "role": "duty_staff",
        "starts_on": date(2024, 5, 1),
        "ends_on": date(2024, 5, 14),
        "slots": THREE,
        "teams": [[1], [2], [3]],
        "rotate_every_days": 7,
    }
    return build(**{**values, **overrides})


def holders(p: Pattern, at: datetime) -> list[int]:
    return [s.person_id for s in shifts(p, at, at + timedelta(microseconds=1))]


def test_three_slots_rotate_weekly_and_the_night_belongs_to_the_day_it_starts() -> None:
    p = three_shifts()

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2024, 5, day, hour, minute, tzinfo=SH)

    assert holders(p, at(1, 6, 59)) == [], "the pattern starts with day 1's first slot"
    assert holders(p, at(1, 7)) == [1]
    assert holders(p, at(1, 15)) == [2]
    assert holders(p, at(1, 23, 30)) == [3]
    assert holders(p, at(2, 3)) == [3], "the night crosses midnight"
    assert holders(p, at(7, 22, 59)) == [2]
    # Day 8 starts period 1 at local midnight; day 7's night (period 0) runs on into it.
    assert holders(p, at(8, 0, 30)) == [3]
    assert holders(p, at(8, 6, 59)) == [3]
    assert holders(p, at(8, 7)) == [2], "早 is team (0 + 1) mod 3"
    assert holders(p, at(8, 15)) == [3]
    assert holders(p, at(8, 23)) == [1]
    assert holders(p, at(14, 23, 30)) == [1]
    assert holders(p, at(15, 6, 59)) == [1], "the last night runs into the day after"
    assert holders(p, at(15, 7)) == []
    assert len(shifts(p, *EVER)) == 14 * 3 == shift_count(p)
    night = shifts(p, at(2, 3), at(2, 4))
    assert [(s.slot, s.day, s.starts_at, s.ends_at) for s in night] == [
        (
            "夜",
            date(2024, 5, 1),
            datetime(2024, 5, 1, 15, tzinfo=UTC),
            datetime(2024, 5, 1, 23, tzinfo=UTC),
        )
    ]


def test_shifts_between_two_instants_are_those_overlapping_them_in_order() -> None:
    p = three_shifts(teams=[[1, 4], [2], [3]])
    got = shifts(p, datetime(2024, 5, 2, 14, tzinfo=SH), datetime(2024, 5, 2, 23, 1, tzinfo=SH))
    assert [(s.slot, s.day.day, s.person_id) for s in got] == [
        ("早", 2, 1),
        ("早", 2, 4),  # a team of two: a shift each, in the team's order
        ("中", 2, 2),
        ("夜", 2, 3),
    ]
    assert all(s.starts_at.tzinfo == UTC for s in got)
    assert shifts(p, datetime(2024, 5, 2, 15, tzinfo=SH), datetime(2024, 5, 2, 15, tzinfo=SH)) == []
    assert shifts(p, datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 4, 30, tzinfo=UTC)) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        shifts(p, datetime(2024, 5, 2), datetime(2024, 5, 3))


def test_slots_may_touch_across_midnight_but_not_overlap() -> None:
    ok = three_shifts(slots=[("白", "08:00", 720), ("夜", "20:00", 720)], teams=[[1], [2]])
    assert check(ok) == []
    with pytest.raises(InvalidPattern) as e:
        three_shifts(slots=[("早", "07:00", 480), ("夜", "22:00", 600)], teams=[[1], [2]])
    assert [p.field for p in e.value.problems] == ["slots[1].start"]
    assert "slots[0]" in e.value.problems[0].message
    whole_day = three_shifts(slots=[("全天", "08:00", 1440)], teams=[[1], [2]])
    assert holders(whole_day, datetime(2024, 5, 2, 7, 59, tzinfo=SH)) == [1]
    assert holders(whole_day, datetime(2024, 5, 2, 8, tzinfo=SH)) == [1], "period 0: team 0"
    assert holders(whole_day, datetime(2024, 5, 8, 8, tzinfo=SH)) == [2]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"slots": [("早", "8:00", 480)], "teams": [[1]]}, "slots[0].start", "HH:MM"),
        ({"slots": [("早", "24:00", 480)], "teams": [[1]]}, "slots[0].start", "HH:MM"),
        ({"slots": [("早", "08:00+08", 480)], "teams": [[1]]}, "slots[0].start", "HH:MM"),
        ({"slots": [*THREE[:1], ("中", "15:00", 0), THREE[2]]}, "slots[1].minutes", "1 to 1440"),
        ({"slots": [("早", "07:00", 1441)], "teams": [[1]]}, "slots[0].minutes", "24 h"),
        ({"slots": [*THREE[:2], ("夜", "14:00", 480)]}, "slots[2].start", "overlaps slots[0]"),
        ({"slots": [*THREE[:2], ("早", "23:00", 480)]}, "slots[2].name", "slots[0]"),
        ({"slots": [*THREE[:2], (" ", "23:00", 480)]}, "slots[2].name", "name"),
        ({"slots": []}, "slots", "at least one slot"),
        ({"teams": [[1], [2]]}, "teams", "as many teams as slots (3)"),
        ({"teams": [[1], [], [3]]}, "teams[1]", "at least one person"),
        ({"teams": [[1], [2, 5, 2], [3]]}, "teams[1][2]", "in the team already"),
        ({"ends_on": date(2024, 4, 30)}, "ends_on", "on or after"),
        ({"ends_on": date(2025, 5, 3)}, "ends_on", "at most 366 days"),
        ({"starts_on": date(1999, 5, 1)}, "starts_on", "2000 to 2099"),
        ({"rotate_every_days": 0}, "rotate_every_days", "from 1"),
        (  # a year of three slots, 20 people a team
            {"ends_on": date(2025, 5, 1), "teams": [list(range(k, k + 20)) for k in (1, 21, 41)]},
            "ends_on",
            f"more than {MAX_SHIFTS}",
        ),
    ],
)
def test_each_problem_names_its_field(overrides: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidPattern) as e:
        three_shifts(**overrides)
    assert [(p.field, words in p.message) for p in e.value.problems] == [(field, True)], (
        e.value.problems
    )


def test_a_year_is_the_longest_span() -> None:
    p = three_shifts(ends_on=date(2025, 5, 2))  # 366 days after 1 May 2024
    assert len(shifts(p, *EVER)) == 367 * 3


@st.composite
def patterns(draw: st.DrawFn, *, equal: bool = False) -> Pattern:
    """Valid patterns: the day cut into 1-5 slots (with gaps), at least as many teams, each a
    few distinct people (person ids name their team: 100 * team + member)."""
    n = draw(st.integers(1, 5))
    cuts = sorted(draw(st.sets(st.integers(0, 1439), min_size=n, max_size=n)))
    offset = draw(st.integers(0, 1439))
    slots = []
    for k, c in enumerate(cuts):
        room = (cuts[k + 1] if k + 1 < n else cuts[0] + 1440) - c
        length = draw(st.integers(1, room))
        start = (c + offset) % 1440
        slots.append(Slot(f"s{k}", time(start // 60, start % 60), length))
    teams = n if equal else draw(st.integers(n, n + 3))
    sizes = [draw(st.integers(1, 3)) for _ in range(teams)]
    rotate = draw(st.integers(1, 10))
    start_day = draw(st.dates(date(2020, 1, 1), date(2030, 12, 31)))
    span = n * rotate if equal else draw(st.integers(0, 40))
    p = Pattern(
        community_id=1,
        role="duty_staff",
        starts_on=start_day,
        ends_on=start_day + timedelta(days=span - 1 if equal else span),
        slots=tuple(draw(st.permutations(slots))),
        teams=tuple(tuple(100 * t + i for i in range(size)) for t, size in enumerate(sizes)),
        rotate_every_days=rotate,
    )
    assert check(p) == []
    return p


@given(patterns())
def test_every_slot_of_every_day_is_held_by_exactly_one_team(p: Pattern) -> None:
    by_slot: dict[tuple[date, str], set[int]] = {}
    for s in shifts(p, *EVER):
        by_slot.setdefault((s.day, s.slot), set()).add(s.person_id)
    days = (p.ends_on - p.starts_on).days + 1
    assert len(by_slot) == days * len(p.slots)
    for people in by_slot.values():
        assert len({person // 100 for person in people}) == 1, "one team"
        assert people == set(p.teams[next(iter(people)) // 100]), "the whole team"
    for day in (p.starts_on + timedelta(days=d) for d in range(days)):
        teams = [team_of(p, day, k) for k in range(len(p.slots))]
        assert len(set(teams)) == len(teams), "no team holds two slots of one day"
    assert shift_count(p) == len(shifts(p, *EVER))


@given(patterns(equal=True))
def test_over_a_full_cycle_each_team_holds_each_slot_equally_often(p: Pattern) -> None:
    held = Counter((s.person_id // 100, s.slot) for s in shifts(p, *EVER) if s.person_id % 100 == 0)
    assert set(held.values()) == {p.rotate_every_days}
    assert len(held) == len(p.teams) * len(p.slots)


@given(patterns(), st.integers(0, 60 * 24 * 45))
def test_no_two_teams_are_on_at_once_and_a_window_finds_its_shifts(p: Pattern, minute: int) -> None:
    at = datetime.combine(p.starts_on, time(0), SH) - timedelta(days=1) + timedelta(minutes=minute)
    on = shifts(p, at, at + timedelta(microseconds=1))
    assert len({s.team for s in on}) <= 1
    everything = shifts(p, *EVER)
    assert on == [s for s in everything if s.starts_at <= at < s.ends_at]
