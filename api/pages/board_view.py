"""API (community notice board): how the board is shown (pure): its live page's absolute URL,
the QR code that leads there (``segno``), and names of what it lists in Chinese and English."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Final
from urllib.parse import quote

import segno
from markupsafe import Markup

from api.pages.board_rules import FEE_UNITS, UNIT_KINDS

DEVICE_CLASSES: Final[dict[str, tuple[str, str]]] = {
    "elevator": ("电梯", "Elevators"),
    "fire_panel": ("火灾报警控制器", "Fire alarm panels"),
    "fire_water": ("消防给水", "Fire water supply"),
    "electrical_fire": ("电气火灾监控", "Electrical fire monitors"),
    "pump_room": ("二次供水泵房", "Pump rooms"),
    "water_quality": ("水质监测", "Water quality"),
}


def page_path(code: str) -> str:
    return f"/board/{quote(code, safe='')}"


def live_url(public_url: str, code: str) -> str | None:
    """The board's absolute URL under ``public_url`` (``SHOUWANG_API_PUBLIC_URL``, which may
    carry a path prefix); None when it is not set: the host is never guessed."""
    base = public_url.strip().rstrip("/")
    if not base:
        return None
    return base + page_path(code)


def qr_code(url: str) -> segno.QRCode:
    """The QR code of ``url``: error correction M at least (segno raises it when it fits)."""
    return segno.make(url, error="m", micro=False)


@lru_cache(maxsize=1024)  # about 5 ms to make; one per community
def qr_svg(url: str) -> Markup:
    """The QR code of ``url`` as inline SVG that scales with its box (no size, a viewBox), dark
    modules black on white; segno writes only its own markup, so it is safe to embed."""
    svg = qr_code(url).svg_inline(
        scale=1, border=4, omitsize=True, dark="#000", light="#fff", svgclass="qr"
    )
    return Markup(svg)  # noqa: S704 - segno's own SVG; the URL is encoded as modules, not text


def yuan(value: Decimal) -> str:
    """An amount as a notice board writes it: ``1.80``, ``12,800.00``."""
    return f"{value:,.2f}"


def fee_unit(unit: str) -> tuple[str, str]:
    return FEE_UNITS.get(unit, (unit, unit))


def unit_kind(kind: str) -> tuple[str, str]:
    return UNIT_KINDS.get(kind, (kind, kind))


def device_class(name: str) -> tuple[str, str]:
    return DEVICE_CLASSES.get(name, (name, name))
