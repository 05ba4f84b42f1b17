"""Who may do what, and who hears which change (pure)."""

from __future__ import annotations

from api.deps import Principal
from api.scope import PERMISSIONS, Action, may
from api.stream import Change, visible


def principal(role: str, communities: frozenset[int] | None, unit: int | None = None) -> Principal:
    return Principal(1, role, "t", communities, None, None, unit)


def test_only_the_regulator_publishes_the_list_and_only_the_firm_side_acts_on_alarms() -> None:
    assert {r for r, acts in PERMISSIONS.items() if Action.PUBLISH_LIST in acts} == {
        "county_regulator"
    }
    assert {r for r, acts in PERMISSIONS.items() if Action.ACT_ON_ALARMS in acts} == {
        "firm_admin",
        "duty_staff",
    }
    assert not may(principal("maintenance_unit", frozenset()), Action.READ_COMMUNITIES)
    assert may(principal("maintenance_unit", frozenset()), Action.MOVE_WORK_ORDERS)
    assert not may(principal("nobody", frozenset()), Action.READ_WORK_ORDERS)


def change(kind: str, community: int, unit: int | None = None) -> Change:
    return Change(1, kind, "insert", 1, community, unit, 9, "EL.TRAPPED", "P0", "active")


def test_a_change_reaches_those_whose_scope_covers_it() -> None:
    duty = principal("duty_staff", frozenset({1}))
    assert visible(change("alarm", 1), duty)
    assert not visible(change("alarm", 2), duty)
    assert visible(change("work_order", 2), principal("county_regulator", None))
    unit = principal("maintenance_unit", frozenset(), unit=5)
    assert visible(change("work_order", 2, unit=5), unit)
    assert not visible(change("work_order", 1, unit=6), unit)
    assert not visible(change("alarm", 1), unit)


def test_a_change_is_read_from_the_triggers_json() -> None:
    payload = (
        '{"seq": 7, "kind": "work_order", "op": "update", "id": 3, "community_id": 1,'
        ' "maintenance_unit_id": null, "device_id": 4, "event_code": "EL.TRAPPED",'
        ' "severity": "P0", "state": "responded"}'
    )
    c = Change.parse(payload)
    assert (c.seq, c.kind, c.id, c.maintenance_unit_id, c.state) == (
        7,
        "work_order",
        3,
        None,
        "responded",
    )
    assert c.as_dict()["community_id"] == 1


def test_platform_alarms_are_the_platform_operators_and_the_regulators_only() -> None:
    def holders(action: Action) -> set[str]:
        return {r for r, acts in PERMISSIONS.items() if action in acts}

    assert holders(Action.ACK_PLATFORM_ALARMS) == {"platform_operator"}
    assert holders(Action.READ_PLATFORM) == {"county_regulator", "platform_operator"}
    assert holders(Action.WRITE_PLATFORM_ROSTER) == {"county_regulator", "platform_operator"}
    operator = principal("platform_operator", frozenset())
    assert not any(
        may(operator, a)
        for a in Action
        if a not in {Action.READ_PLATFORM, Action.ACK_PLATFORM_ALARMS, Action.WRITE_PLATFORM_ROSTER}
    )
