"""Device profiles and site configs: the shipped ones load; a wrong one names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.catalogue import DeviceClass, metrics_by_class
from sites.config import SiteConfigError, load_site_config, parse_site_config
from sites.converter import Function
from sites.profiles import ProfileError, load_profiles, parse_profile, shipped_profiles


def test_shipped_profiles_cover_the_modbus_models() -> None:
    profiles = shipped_profiles()
    assert {p.device_class for p in profiles.values()} == {
        DeviceClass.PUMP_ROOM,
        DeviceClass.FIRE_WATER,
        DeviceClass.WATER_QUALITY,
        DeviceClass.ELECTRICAL_FIRE,
    }
    pr = profiles["pump-room-controller"]
    fed = {p.metric for p in pr.points if p.metric}
    assert fed == set(metrics_by_class()[DeviceClass.PUMP_ROOM])  # every metric of the class
    # 17 points in 3 requests: one per table
    assert [(r.function, r.count) for r in pr.reads] == [
        (Function.DISCRETE_INPUTS, 1),
        (Function.HOLDING, 1),
        (Function.INPUT, 16),
    ]


BAD_PROFILE = b"""\
model: bad-model
device_class: pump_room
points:
  - {name: level, function: input, address: 0, type: uint16, metric: tank_levl}
  - {name: level, function: coils, address: 70000, type: uint16, metric: flow}
  - name: fault
    function: holding
    address: 3
    type: float32
    bit: 2
    event: {code: FIRE}
  - {name: spare, function: input, address: 9, type: int16}
  - {name: x, function: input, address: 10, type: int16, metric: flow, colour: red}
"""


def test_a_wrong_profile_lists_every_problem_with_its_line() -> None:
    with pytest.raises(ProfileError) as e:
        parse_profile(BAD_PROFILE, "bad.yaml")
    lines = [str(p) for p in e.value.errors]
    assert lines == [
        "bad.yaml:5: points[1].address: Input should be less than 65536",
        "bad.yaml:13: points[4].colour: this key is not part of the format; remove it or check its spelling",
    ]
    fixed = BAD_PROFILE.replace(b"70000", b"7").replace(b", colour: red", b"")
    with pytest.raises(ProfileError) as e:
        parse_profile(fixed, "bad.yaml")
    got = {(p.line, p.path, p.message.split(";")[0].split(" (")[0]) for p in e.value.errors}
    assert got == {
        (4, "points[0].metric", "pump_room has no metric 'tank_levl'"),
        (5, "points[1].name", "point 'level' is already defined"),
        (5, "points[1].type", "a point of coils is bool"),
        (11, "points[2].event", "pump_room has no event code 'FIRE'"),
        (
            11,
            "points[2].event",
            "an event is raised by a discrete value: use a bool, integer or bit",
        ),
        (10, "points[2].bit", "a bit field is taken from an int16 or uint16 register"),
        (12, "points[3]", "a point feeds a 'metric', an 'event', or both"),
        (13, "points[4].metric", "metric 'flow' is already fed by points[1]"),
    }


def test_a_profile_folder_adds_models(tmp_path: Path) -> None:
    (tmp_path / "meter-x.yaml").write_text(
        "model: meter-x\ndevice_class: electrical_fire\npoints:\n"
        "  - {name: i, function: holding, address: 4, type: uint32, metric: residual_current}\n"
    )
    assert "meter-x" in load_profiles(tmp_path)
    (tmp_path / "meter-y.yaml").write_text(
        "model: meter-z\ndevice_class: electrical_fire\npoints: []\n"
    )
    with pytest.raises(ProfileError, match=r"meter-y\.yaml:3"):
        load_profiles(tmp_path)


SITE = """\
gateway: C01-GW
broker: {host: 127.0.0.1, port: 1883, password_file: gw.secret}
buffer: {path: buffer.db, max_bytes: 1048576}
networks: [127.0.0.0/8, /dev/pts/9]
devices:
  - {uid: C01-PR, profile: pump-room-controller, tcp: {host: 127.0.0.1, port: 5020}, unit: 1}
  - {uid: C01-EF1, profile: residual-current-monitor, serial: {port: /dev/pts/9}, unit: 3}
"""


def test_site_config_resolves_profiles_and_paths(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    cfg = load_site_config(tmp_path / "site.yaml")
    assert cfg.gateway == "C01-GW"
    assert cfg.buffer_path == tmp_path / "buffer.db"
    assert cfg.broker.password_file == tmp_path / "gw.secret"
    assert [d.profile.model for d in cfg.devices] == [
        "pump-room-controller",
        "residual-current-monitor",
    ]


def test_site_config_keeps_devices_on_declared_networks() -> None:
    bad = (
        SITE.replace("127.0.0.0/8", "10.0.0.0/8")
        .replace("/dev/pts/9]", "/dev/pts/9, 300.1.2.3/8]")
        .replace(
            "unit: 3}",
            "unit: 3}\n  - {uid: C01-PR, profile: pump-room, tcp: {host: 10.0.0.2}, serial: {port: /dev/pts/9}}",
        )
    )
    with pytest.raises(SiteConfigError) as e:
        parse_site_config(bad.encode(), "site.yaml", Path("/"))
    assert [(p.line, p.path) for p in e.value.errors] == [(8, "devices[2]")]
    bad = bad.replace(", serial: {port: /dev/pts/9}}", "}")
    with pytest.raises(SiteConfigError) as e:
        parse_site_config(bad.encode(), "site.yaml", Path("/"))
    got = [(p.line, p.path, p.message[:30]) for p in e.value.errors]
    assert got == [
        (4, "networks[2]", "not an IP network (192.168.10."),
        (6, "devices[0].tcp", "not on a declared network: lis"),
        (8, "devices[2].uid", "C01-PR is already devices[0]"),
        (8, "devices[2].profile", "no profile 'pump-room'; known:"),
    ]
