"""Shared: the device classes, their metrics (unit, physical range) and their event codes.

This is the single source the registry's ``metrics`` and ``event_codes`` tables are synced from
(``shouwang migrate``). Ranges are *physical* limits: a value outside them cannot be a true
reading and is rejected at ingest. Alarm thresholds belong to the responsibility list, not here.
Sources: GB/T 24476 (elevator IoT), GB 26875.3 (fire remote monitoring), GB 50974, GB 5749-2022.
Metric ids are stable: never renumber, only append.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeviceClass(StrEnum):
    ELEVATOR = "elevator"
    FIRE_PANEL = "fire_panel"
    FIRE_WATER = "fire_water"
    ELECTRICAL_FIRE = "electrical_fire"
    PUMP_ROOM = "pump_room"
    WATER_QUALITY = "water_quality"


@dataclass(frozen=True, slots=True)
class Metric:
    id: int
    device_class: DeviceClass
    name: str
    unit: str
    lo: float
    hi: float
    kind: str  # gauge | counter | state
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class EventCode:
    device_class: DeviceClass
    code: str
    name_zh: str
    name_en: str


E, FP, FW, EF, PR, WQ = (
    DeviceClass.ELEVATOR,
    DeviceClass.FIRE_PANEL,
    DeviceClass.FIRE_WATER,
    DeviceClass.ELECTRICAL_FIRE,
    DeviceClass.PUMP_ROOM,
    DeviceClass.WATER_QUALITY,
)

METRICS: tuple[Metric, ...] = (
    Metric(101, E, "service_mode", "", 0, 7, "state", "服务模式", "service mode"),
    Metric(102, E, "car_status", "", 0, 1, "state", "轿厢运行状态", "car running"),
    Metric(103, E, "direction", "", 0, 2, "state", "运行方向", "direction"),
    Metric(104, E, "door_zone", "", 0, 1, "state", "平层区域", "in door zone"),
    Metric(105, E, "floor", "", -10, 200, "gauge", "楼层", "floor"),
    Metric(106, E, "door_state", "", 0, 3, "state", "门状态", "door state"),
    Metric(107, E, "passenger_present", "", 0, 1, "state", "轿内有人", "passenger present"),
    Metric(108, E, "power", "", 0, 1, "state", "电源状态", "main power normal"),
    Metric(109, E, "up_limit", "", 0, 1, "state", "上限位", "up limit switch"),
    Metric(110, E, "down_limit", "", 0, 1, "state", "下限位", "down limit switch"),
    Metric(111, E, "run_hours", "h", 0, 1e6, "counter", "累计运行时间", "run hours"),
    Metric(112, E, "trip_count", "", 0, 1e10, "counter", "运行次数", "trip count"),
    Metric(113, E, "speed", "m/s", 0, 20, "gauge", "运行速度", "speed"),
    Metric(114, E, "vibration", "m/s²", 0, 50, "gauge", "振动", "vibration"),
    Metric(
        115, E, "machine_room_temp", "°C", -40, 100, "gauge", "机房温度", "machine-room temperature"
    ),
    Metric(201, FP, "main_power", "", 0, 1, "state", "主电状态", "main power normal"),
    Metric(202, FP, "backup_power", "", 0, 1, "state", "备电状态", "backup power normal"),
    Metric(203, FP, "active_fire", "", 0, 10000, "gauge", "火警点数", "points in fire alarm"),
    Metric(204, FP, "active_fault", "", 0, 10000, "gauge", "故障点数", "points in fault"),
    Metric(205, FP, "disabled_points", "", 0, 10000, "gauge", "屏蔽点数", "disabled points"),
    Metric(
        301, FW, "sprinkler_pressure", "MPa", 0, 4, "gauge", "喷淋管网压力", "sprinkler pressure"
    ),
    Metric(302, FW, "hydrant_pressure", "MPa", 0, 4, "gauge", "消火栓管网压力", "hydrant pressure"),
    Metric(303, FW, "tank_level", "m", 0, 30, "gauge", "消防水箱液位", "fire tank level"),
    Metric(
        304,
        FW,
        "tank_static_pressure",
        "MPa",
        0,
        2,
        "gauge",
        "高位水箱静压",
        "tank static pressure",
    ),
    Metric(401, EF, "residual_current", "mA", 0, 5000, "gauge", "剩余电流", "residual current"),
    Metric(402, EF, "cable_temp", "°C", -40, 200, "gauge", "线缆温度", "cable temperature"),
    Metric(501, PR, "tank_level", "m", 0, 20, "gauge", "生活水箱液位", "domestic tank level"),
    Metric(
        502, PR, "inlet_pressure", "MPa", 0, 2, "gauge", "市政进水压力", "municipal inlet pressure"
    ),
    Metric(503, PR, "zone_low_pressure", "MPa", 0, 3, "gauge", "低区供水压力", "low zone pressure"),
    Metric(504, PR, "zone_mid_pressure", "MPa", 0, 3, "gauge", "中区供水压力", "mid zone pressure"),
    Metric(
        505, PR, "zone_high_pressure", "MPa", 0, 3, "gauge", "高区供水压力", "high zone pressure"
    ),
    Metric(506, PR, "pump1_run", "", 0, 1, "state", "1号泵运行", "pump 1 running"),
    Metric(507, PR, "pump1_fault", "", 0, 1, "state", "1号泵故障", "pump 1 fault"),
    Metric(508, PR, "pump1_current", "A", 0, 500, "gauge", "1号泵电流", "pump 1 current"),
    Metric(509, PR, "pump2_run", "", 0, 1, "state", "2号泵运行", "pump 2 running"),
    Metric(510, PR, "pump2_fault", "", 0, 1, "state", "2号泵故障", "pump 2 fault"),
    Metric(511, PR, "pump2_current", "A", 0, 500, "gauge", "2号泵电流", "pump 2 current"),
    Metric(512, PR, "flood", "", 0, 1, "state", "水淹", "flood"),
    Metric(513, PR, "room_temp", "°C", -40, 80, "gauge", "泵房温度", "room temperature"),
    Metric(514, PR, "room_humidity", "%", 0, 100, "gauge", "泵房湿度", "room humidity"),
    Metric(515, PR, "voltage", "V", 0, 500, "gauge", "电压", "supply voltage"),
    Metric(516, PR, "energy", "kWh", 0, 1e9, "counter", "累计电能", "energy"),
    Metric(517, PR, "flow", "m³/h", 0, 1000, "gauge", "供水流量", "supply flow"),
    Metric(601, WQ, "residual_chlorine", "mg/L", 0, 10, "gauge", "余氯", "free residual chlorine"),
    Metric(602, WQ, "turbidity", "NTU", 0, 1000, "gauge", "浊度", "turbidity"),
    Metric(603, WQ, "ph", "", 0, 14, "gauge", "pH", "pH"),
    Metric(604, WQ, "water_temp", "°C", 0, 60, "gauge", "水温", "water temperature"),
)

EVENT_CODES: tuple[EventCode, ...] = (
    EventCode(E, "01", "运行中安全回路断路", "safety circuit open while running"),
    EventCode(E, "02", "关门故障", "door close fault"),
    EventCode(E, "03", "开门故障", "door open fault"),
    EventCode(E, "04", "开锁区域外停梯", "stop outside door zone"),
    EventCode(E, "05", "轿厢意外移动", "car moves with door open"),
    EventCode(E, "06", "运行时间限制器动作", "run-time limiter tripped"),
    EventCode(E, "07", "楼层位置丢失", "floor position lost"),
    EventCode(E, "08", "防止电梯再运行动作", "re-run prevention"),
    EventCode(E, "09", "冲顶", "overrun top"),
    EventCode(E, "10", "蹲底", "overrun bottom"),
    EventCode(E, "11", "平层困人", "trapped passengers (in door zone)"),
    EventCode(E, "41", "主电源断电", "main power loss"),
    EventCode(E, "42", "停止服务", "out of service"),
    EventCode(E, "43", "检修", "inspection"),
    EventCode(E, "44", "消防返回", "fire return"),
    EventCode(E, "45", "消防员运行", "firefighter operation"),
    EventCode(E, "46", "应急电源运行", "emergency power"),
    EventCode(E, "47", "地震运行", "earthquake operation"),
    EventCode(E, "90", "报警按钮动作", "alarm button pressed"),
    EventCode(E, "93", "非平层困人", "trapped passengers (outside door zone)"),
    EventCode(FP, "FIRE", "火警", "fire alarm"),
    EventCode(FP, "FAULT", "故障", "component fault"),
    EventCode(FP, "DISABLED", "屏蔽", "component disabled"),
    EventCode(FP, "SUPERVISORY", "监管", "supervisory"),
    EventCode(FP, "STARTED", "启动", "started"),
    EventCode(FP, "FEEDBACK", "反馈", "feedback"),
    EventCode(FP, "MAIN_POWER_FAULT", "主电故障", "main power fault"),
    EventCode(FP, "BACKUP_POWER_FAULT", "备电故障", "backup power fault"),
    EventCode(FP, "BUS_FAULT", "总线故障", "bus fault"),
    EventCode(FW, "LOW_PRESSURE", "压力低", "pressure low (device alarm)"),
    EventCode(PR, "PUMP_FAULT", "水泵故障", "pump fault (device alarm)"),
    EventCode(PR, "FLOOD", "泵房水淹", "pump-room flood (device alarm)"),
)


def metrics_by_class() -> dict[DeviceClass, dict[str, Metric]]:
    out: dict[DeviceClass, dict[str, Metric]] = {c: {} for c in DeviceClass}
    for m in METRICS:
        out[m.device_class][m.name] = m
    return out


def event_codes_by_class() -> dict[DeviceClass, dict[str, EventCode]]:
    out: dict[DeviceClass, dict[str, EventCode]] = {c: {} for c in DeviceClass}
    for e in EVENT_CODES:
        out[e.device_class][e.code] = e
    return out
