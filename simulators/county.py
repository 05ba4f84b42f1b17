"""Simulators: a demo county, generated deterministically from a seed (pure; no I/O).

County -> townships -> communities (each run by a property firm) -> buildings -> devices.
Per community: elevators in the taller buildings, a fire-water terminal and electrical-fire
monitors per building, one fire panel, one pump room and two water-quality probes. The
electrical-fire monitors and water-quality probes speak Modbus to a site gateway, which forwards
them in batch form; the rest publish on their own connections.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from core.catalogue import DeviceClass


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    kind: str
    parent: str | None
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class Firm:
    code: str
    name_zh: str
    name_en: str
    phone: str


@dataclass(frozen=True, slots=True)
class MaintenanceUnit:
    code: str
    kind: str
    name_zh: str
    name_en: str
    phone: str


@dataclass(frozen=True, slots=True)
class Building:
    code: str
    name: str
    floors: int


@dataclass(frozen=True, slots=True)
class Device:
    uid: str
    device_class: DeviceClass
    model: str
    building: str | None
    location: str
    maintenance_unit: str | None
    gateway: str | None
    install_date: date
    report_interval_s: int
    attributes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Community:
    code: str
    township: str
    firm: str
    name_zh: str
    name_en: str
    address: str
    buildings: tuple[Building, ...]
    gateway: str
    devices: tuple[Device, ...]


@dataclass(frozen=True, slots=True)
class County:
    regions: tuple[Region, ...]
    firms: tuple[Firm, ...]
    units: tuple[MaintenanceUnit, ...]
    communities: tuple[Community, ...]

    def devices(self) -> list[Device]:
        return [d for c in self.communities for d in c.devices]


TOWNSHIPS = (
    ("东城街道", "Dongcheng Subdistrict"),
    ("西城街道", "Xicheng Subdistrict"),
    ("南湖镇", "Nanhu Town"),
    ("北山镇", "Beishan Town"),
)
FIRMS = (
    ("安居物业服务有限公司", "Anju Property Services"),
    ("和家物业管理有限公司", "Hejia Property Management"),
    ("恒信物业服务有限公司", "Hengxin Property Services"),
    ("绿城邻里物业有限公司", "Lucheng Neighbourhood Property"),
    ("新禾物业服务有限公司", "Xinhe Property Services"),
)
COMMUNITY_NAMES = (
    "锦绣",
    "阳光",
    "和谐",
    "翠湖",
    "金桂",
    "紫薇",
    "春晓",
    "滨河",
    "丽景",
    "书香",
    "嘉园",
    "康乐",
    "润泽",
    "悦府",
    "枫林",
    "清泉",
    "华庭",
    "长安",
    "兴业",
    "瑞祥",
    "盛世",
    "御景",
    "海棠",
    "东方",
)


def demo_county(
    *, communities: int = 20, buildings: int = 17, seed: int = 7, report_interval_s: int = 10
) -> County:
    rng = random.Random(seed)
    regions = [Region("DEMO", "county", None, "示范县", "Demo County")]
    for i, (zh, en) in enumerate(TOWNSHIPS, 1):
        regions.append(Region(f"T{i:02d}", "township", "DEMO", zh, en))
    firms = tuple(
        Firm(f"F{i:02d}", zh, en, f"0359-60{i:02d}{rng.randrange(1000, 9999)}")
        for i, (zh, en) in enumerate(FIRMS, 1)
    )
    units = (
        MaintenanceUnit(
            "MU-EL1", "elevator", "通达电梯维保有限公司", "Tongda Elevator Service", "0359-6110001"
        ),
        MaintenanceUnit(
            "MU-EL2",
            "elevator",
            "永安电梯工程有限公司",
            "Yong'an Elevator Engineering",
            "0359-6110002",
        ),
        MaintenanceUnit(
            "MU-EL3", "elevator", "迅捷电梯维修有限公司", "Xunjie Elevator Repair", "0359-6110003"
        ),
        MaintenanceUnit(
            "MU-FI1", "fire", "安盾消防设施维保有限公司", "Andun Fire Systems", "0359-6120001"
        ),
        MaintenanceUnit(
            "MU-FI2", "fire", "卫士消防工程有限公司", "Weishi Fire Engineering", "0359-6120002"
        ),
        MaintenanceUnit(
            "MU-WA1", "water", "县供水有限公司", "County Water Supply Co.", "0359-6130001"
        ),
    )
    out = []
    for c in range(1, communities + 1):
        code = f"C{c:02d}"
        township = f"T{(c - 1) % len(TOWNSHIPS) + 1:02d}"
        firm = firms[(c - 1) % len(firms)].code
        name = COMMUNITY_NAMES[(c - 1) % len(COMMUNITY_NAMES)]
        el_unit = units[(c - 1) % 3].code
        fire_unit = units[3 + (c - 1) % 2].code
        gw = f"{code}-GW"
        n_b = max(1, buildings + rng.randint(-3, 3))
        blds = tuple(
            Building(f"B{b:02d}", f"{b}号楼", rng.choice((6, 11, 18, 18, 26, 33)))
            for b in range(1, n_b + 1)
        )
        installed = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 1500))
        devs: list[Device] = []

        def add(
            uid: str,
            cls: DeviceClass,
            model: str,
            bld: str | None,
            loc: str,
            unit: str | None,
            gateway: str | None = None,
            **attrs: float,
        ) -> None:
            when = installed  # noqa: B023 (add is called within this iteration only)
            devs.append(  # noqa: B023
                Device(uid, cls, model, bld, loc, unit, gateway, when, report_interval_s, attrs)
            )

        for b in blds:
            if b.floors >= 8:
                for k in range(1, 3):
                    add(
                        f"{code}-{b.code}-EL{k}",
                        DeviceClass.ELEVATOR,
                        "SW-ELT-200",
                        b.code,
                        f"{b.name}{k}号电梯",
                        el_unit,
                        floors=b.floors,
                        rated_speed=1.75 if b.floors > 20 else 1.0,
                    )
            add(
                f"{code}-{b.code}-FW",
                DeviceClass.FIRE_WATER,
                "SW-FWM-10",
                b.code,
                f"{b.name}顶层消防水压",
                fire_unit,
            )
            for k in range(1, 4):
                add(
                    f"{code}-{b.code}-EF{k}",
                    DeviceClass.ELECTRICAL_FIRE,
                    "SW-EFM-3",
                    b.code,
                    f"{b.name}{k}单元配电箱",
                    fire_unit,
                    gateway=gw,
                )
        add(f"{code}-FP", DeviceClass.FIRE_PANEL, "SW-FAP-1", None, "消防控制室", fire_unit)
        add(
            f"{code}-PR",
            DeviceClass.PUMP_ROOM,
            "SW-PRM-2",
            None,
            "二次供水泵房",
            "MU-WA1",
            tank_area_m2=40.0,
            refill_on_m=2.0,
            refill_off_m=3.5,
        )
        add(
            f"{code}-WQ1",
            DeviceClass.WATER_QUALITY,
            "SW-WQ-4",
            None,
            "泵房出水口",
            "MU-WA1",
            gateway=gw,
        )
        add(
            f"{code}-WQ2",
            DeviceClass.WATER_QUALITY,
            "SW-WQ-4",
            None,
            "管网末梢",
            "MU-WA1",
            gateway=gw,
        )
        out.append(
            Community(
                code,
                township,
                firm,
                f"{name}小区",
                f"{name.title()} Community",
                f"示范县{name}路{c * 11}号",
                blds,
                gw,
                tuple(devs),
            )
        )
    return County(tuple(regions), firms, units, tuple(out))
