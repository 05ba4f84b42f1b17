"""The demo's Modbus devices (pure part): what the simulator writes into a device's registers, laid
out by the gateway's shipped profiles, is what the gateway's own converter reads back, faults
included."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from shouwang.demo_sites import SiteDevice, Uplink, config_text, profiles_by_class, register_map
from simulators.behaviour import behaviour_for
from simulators.faults import Fault
from simulators.modbus_sites import Table, Words, assign_units, reading_at, registers_for
from sites.config import parse_site_config
from sites.converter import active_codes, decode
from sites.profiles import Profile, shipped_profiles

BY_CLASS = profiles_by_class(shipped_profiles())
T = 1_764_547_200.0 + 8 * 3600  # a morning, local time


def polled(profile: Profile, words: Words) -> tuple[dict[str, float], dict[str, int]]:
    """What a poll of ``profile`` decodes from ``words`` (unset registers read 0)."""
    answers = [
        [words.get((Table(r.function.value), r.address + i), 0) for i in range(r.count)]
        for r in profile.reads
    ]
    d = decode(list(profile.reads), answers)
    assert d.unusable == ()
    return d.values, d.discrete


def test_every_modbus_class_has_a_shipped_profile() -> None:
    assert sorted(BY_CLASS) == ["electrical_fire", "fire_water", "pump_room", "water_quality"]


@pytest.mark.parametrize("device_class", sorted(BY_CLASS))
def test_registers_read_back_as_the_behaviours_values(device_class: str) -> None:
    profile = BY_CLASS[device_class]
    behaviour = behaviour_for(device_class, {}, random.Random(3))
    for k in range(20):
        values = behaviour.sample(T + 10 * k)
        got, _ = polled(profile, registers_for(register_map(profile), values))
        fed = {p.metric for p in profile.points if p.metric is not None}
        assert set(got) == fed
        for p in profile.points:
            if p.metric is None:
                continue
            want = values[p.metric]
            if p.data_type.name.startswith("FLOAT"):
                assert got[p.metric] == pytest.approx(want, rel=1e-6, abs=1e-6), p.name
            else:  # integers: within half a step of the scale
                assert abs(got[p.metric] - want) <= abs(p.scale) / 2 + 1e-9, p.name


def test_a_pump_fault_is_the_fault_bit_and_raises_the_pump_fault_event() -> None:
    pr = BY_CLASS["pump_room"]
    behaviour = behaviour_for("pump_room", {}, random.Random(1))
    fault = Fault(
        "pump_failure", "X", T, T + 300, None, values={"pump1_fault": 1.0, "pump1_current": 0.0}
    )
    rng = random.Random(0)
    before = reading_at(behaviour, [fault], T - 1, rng)
    during = reading_at(behaviour, [fault], T + 1, rng)
    values, discrete = polled(pr, registers_for(register_map(pr), before.values, before.events))
    assert values["pump1_fault"] == 0.0
    assert active_codes(pr.points, discrete) == {"PUMP_FAULT": False, "FLOOD": False}
    words = registers_for(register_map(pr), during.values, during.events)
    status = words[(Table.HOLDING, 0)]
    assert status & 0b10, "bit 1 of the pump status word is pump 1's fault"
    values, discrete = polled(pr, words)
    assert values["pump1_fault"] == 1.0 and values["pump1_current"] == 0.0
    assert values["pump1_run"] == 1.0, "the other bits of the word are kept"
    assert active_codes(pr.points, discrete)["PUMP_FAULT"] is True


def test_a_faults_device_events_set_the_points_that_raise_them() -> None:
    fw = BY_CLASS["fire_water"]
    behaviour = behaviour_for("fire_water", {}, random.Random(1))
    fault = Fault("relay", "X", T, T + 60, None, events=("LOW_PRESSURE",))
    on = reading_at(behaviour, [fault], T + 1, random.Random(0))
    off = reading_at(behaviour, [fault], T + 61, random.Random(0))
    assert on.events == {"LOW_PRESSURE"} and off.events == frozenset()
    assert active_codes(
        fw.points, polled(fw, registers_for(register_map(fw), on.values, on.events))[1]
    ) == {"LOW_PRESSURE": True}
    assert active_codes(fw.points, polled(fw, registers_for(register_map(fw), off.values))[1]) == {
        "LOW_PRESSURE": False
    }


def test_an_offline_fault_makes_the_device_stop_answering() -> None:
    behaviour = behaviour_for("electrical_fire", {}, random.Random(1))
    fault = Fault("device_offline", "X", T, T + 60, None, transport="offline")
    assert reading_at(behaviour, [fault], T - 1, random.Random(0)).answering
    assert not reading_at(behaviour, [fault], T + 1, random.Random(0)).answering
    assert reading_at(behaviour, [fault], T + 60, random.Random(0)).answering


def test_values_a_register_cannot_hold_are_brought_into_its_range() -> None:
    wq = BY_CLASS["water_quality"]
    words = registers_for(
        register_map(wq), {"residual_chlorine": -1.0, "ph": 1e9, "water_temp": math.nan}
    )
    got, _ = polled(wq, words)
    assert got["residual_chlorine"] == 0.0  # uint16 at 0.001
    assert got["ph"] == pytest.approx(655.35)  # uint16 at 0.01
    assert got["water_temp"] == 0.0


def test_units_fill_a_port_then_the_next() -> None:
    uids = [f"D{i:03d}" for i in range(500)]
    places = assign_units(uids)
    assert places["D000"] == (0, 1) and places["D246"] == (0, 247)
    assert places["D247"] == (1, 1) and places["D499"] == (2, 6)
    assert assign_units(uids[:5], per_port=2) == {
        "D000": (0, 1),
        "D001": (0, 2),
        "D002": (1, 1),
        "D003": (1, 2),
        "D004": (2, 1),
    }
    with pytest.raises(ValueError, match="1 to 247 unit ids"):
        assign_units(uids, per_port=248)


def test_the_generated_site_config_is_one_the_gateway_accepts(tmp_path: Path) -> None:
    devices = [
        SiteDevice("C01-PR", "pump-room-controller", 15020, 1, 10.0),
        SiteDevice("C01-B01-EF1", "residual-current-monitor", 15020, 2, 10.0),
        SiteDevice("C01-B01-FW", "fire-water-transmitter", 15021, 1, 5.0),
    ]
    text = config_text(
        "C01-GW",
        Uplink("mqtt.example.org", 8883, tls=True, ca_file=Path("/etc/ca.pem")),
        devices,
        uplink_options={"max_kib_per_minute": 1200},
    )
    cfg = parse_site_config(text.encode(), "site.yaml", tmp_path)
    assert cfg.gateway == "C01-GW"
    assert cfg.broker.tls and cfg.broker.ca_file == Path("/etc/ca.pem")
    assert cfg.broker.password_file == tmp_path / "gateway.secret"
    assert cfg.buffer_path == tmp_path / "buffer.db"
    assert cfg.max_kib_per_minute == 1200
    assert [(d.uid, d.profile.model, d.unit, d.poll_s) for d in cfg.devices] == [
        ("C01-PR", "pump-room-controller", 1, 10.0),
        ("C01-B01-EF1", "residual-current-monitor", 2, 10.0),
        ("C01-B01-FW", "fire-water-transmitter", 1, 5.0),
    ]
