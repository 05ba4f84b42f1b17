"""The regulator's dashboard: its platform-alarms panel tells what each kind of platform alarm
means, the learned models' drift and the site gateways' trouble among them."""

from __future__ import annotations

from dashboards import regulator
from dashboards.model import Panel
from lifecycle.platform import PlatformKind
from responsibility.loader import default_list


def test_the_platform_alarms_panel_names_every_kind() -> None:
    board = regulator.build(default_list().entries.values())
    [panel] = [p for p in board.panels if isinstance(p, Panel) and "Platform alarms" in p.title]
    missing = [k.value for k in PlatformKind if f"({k.value})" not in panel.description]
    assert not missing, f"the panel description does not name {missing}"
