"""API (duty pages): what the pages show, computed from plain values (pure): Beijing time,
SLA countdowns, status names in Chinese and English, and the small SVG chart of a device's
recent readings (no JavaScript: the browser draws the SVG as it is)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

BEIJING: Final = ZoneInfo("Asia/Shanghai")

STATUS: Final = {
    "occurred": ("待响应", "Waiting for response"),
    "responded": ("已响应", "Responded"),
    "on_site": ("已到场", "On site"),
    "completed": ("已完成", "Completed"),
    "false_alarm": ("误报", "False alarm"),
    "active": ("未确认", "Not acknowledged"),
    "acknowledged": ("已确认", "Acknowledged"),
    "cleared": ("已解除", "Cleared"),
}
LIMITS: Final = {
    "response": ("响应", "Respond"),
    "arrival": ("到场", "Arrive"),
    "resolution": ("处置完成", "Resolve"),
}
OUTCOMES: Final = {
    "met": ("达标", "met"),
    "missed": ("超时", "missed"),
    "pending": ("进行中", "pending"),
    "not_counted": ("不计", "not counted"),
}
ROLES: Final = {
    "duty_staff": ("值班员", "Duty staff"),
    "project_manager": ("项目经理", "Project manager"),
    "firm_manager": ("物业经理", "Firm manager"),
    "maintenance_staff": ("维保人员", "Maintenance staff"),
}


def beijing(t: datetime | None) -> str:
    """``t`` in Beijing time, as staff read it: ``2026-12-01 08:05``."""
    if t is None:
        return "—"
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def countdown(due: datetime | None, done: datetime | None, now: datetime) -> tuple[str, str]:
    """(text, css class) of a limit: time left, time over, or done on time / late."""
    if due is None:
        return "—", ""
    if done is not None:
        late = done > due
        return ("超时完成 late" if late else "按时 on time"), ("late" if late else "ok")
    left = (due - now).total_seconds()
    text = _duration(abs(left))
    if left >= 0:
        return f"剩余 {text} left", "soon" if left < 600 else "ok"
    return f"超时 {text} over", "late"


def _duration(seconds: float) -> str:
    if seconds < 60:  # a P0's first minute: "0 min left" would read as already due
        return f"{int(seconds)} 秒 s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} 分 min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} 小时 h {minutes} 分 min"
    return f"{hours // 24} 天 d {hours % 24} 小时 h"


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG polyline of one metric's readings, scaled into a ``width`` x ``height`` box."""

    points: str
    width: int
    height: int
    lo: float
    hi: float
    last: float
    count: int


def chart(
    readings: Sequence[tuple[datetime, float]], *, width: int = 320, height: int = 80
) -> Chart | None:
    """The chart of ``readings`` (any order; NaN and infinite values left out); None when
    fewer than two remain."""
    pts = sorted((t, v) for t, v in readings if math.isfinite(v))
    if len(pts) < 2:
        return None
    t0, t1 = pts[0][0].timestamp(), pts[-1][0].timestamp()
    lo = min(v for _, v in pts)
    hi = max(v for _, v in pts)
    span_t = (t1 - t0) or 1.0
    span_v = (hi - lo) or 1.0
    pad = 4
    xy = (
        (
            pad + (t.timestamp() - t0) / span_t * (width - 2 * pad),
            height - pad - (v - lo) / span_v * (height - 2 * pad),
        )
        for t, v in pts
    )
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    return Chart(points, width, height, lo, hi, pts[-1][1], len(pts))
